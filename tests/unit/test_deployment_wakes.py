"""A Deployment's watch events wake its installation only when they change what the rollout decisions
read of it (`observe.decision_facts`): not for every step of a rolling update's replica counts."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.support.scripted_kube import ScriptedClient
from tracardi_operator import handlers
from tracardi_operator.kube import Kube
from tracardi_operator.labels import LABEL_INSTANCE, LABEL_VERSION
from tracardi_operator.runtime import Runtime
from tracardi_operator.settings import Settings


def deployment(tag: str, generation: int, observed: int, updated: int, ready: int, total: int,
               conditions: list[dict[str, str]] | None = None, terminating: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": "acme-api", "namespace": "ns", "generation": generation,
                     "labels": {LABEL_INSTANCE: "acme"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {LABEL_VERSION: tag}}}},
        "status": {"observedGeneration": observed, "updatedReplicas": updated, "readyReplicas": ready,
                   "replicas": total, "terminatingReplicas": terminating, "conditions": conditions or []},
    }


def test_only_events_that_change_a_decision_input_wake_the_installation() -> None:
    async def scenario() -> list[bool]:
        runtime = Runtime(settings=Settings(), kube=Kube(ScriptedClient()))
        wake = asyncio.Event()
        runtime.wakeups[("ns", "acme")] = wake
        woken: list[bool] = []

        async def event(kind: str | None, body: dict[str, Any]) -> None:
            wake.clear()
            await handlers.deployment_changed(type=kind, body=body, namespace="ns", name=body["metadata"]["name"],
                                              labels=body["metadata"]["labels"], memo={"runtime": runtime})
            woken.append(wake.is_set())

        await event(None, deployment("0.8.2.1", 1, 1, 2, 2, 2))  # the initial listing
        await event("MODIFIED", deployment("0.8.2.1", 1, 1, 2, 2, 2))  # a resync echo: nothing changed
        await event("MODIFIED", deployment("0.8.2.2", 2, 1, 2, 2, 2))  # the operator's patch
        await event("MODIFIED", deployment("0.8.2.2", 2, 2, 0, 2, 3))  # the controller saw it
        await event("MODIFIED", deployment("0.8.2.2", 2, 2, 1, 2, 3))  # one replica updated
        await event("MODIFIED", deployment("0.8.2.2", 2, 2, 2, 1, 3))  # an old one gone
        await event("MODIFIED", deployment("0.8.2.2", 2, 2, 2, 2, 2, terminating=1))  # rolled out
        await event("MODIFIED", deployment("0.8.2.2", 2, 2, 2, 2, 2))  # the old pods gone
        await event("MODIFIED", deployment("0.8.2.2", 2, 2, 2, 0, 2))  # no replica ready any more
        await event("MODIFIED", deployment("0.8.2.2", 2, 2, 2, 0, 2, [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]))  # stalled
        await event("DELETED", deployment("0.8.2.2", 2, 2, 2, 0, 2))
        await event(None, deployment("0.8.2.2", 2, 2, 2, 0, 2))  # seen again after its deletion
        return woken

    assert asyncio.run(scenario()) == [True, False, True, False, False, False, True, True, True, True, True, True]


def test_an_installation_forgotten_takes_its_deployments_facts_with_it() -> None:
    """A Deployment whose deletion the watch missed (a reconnect's gap) is not remembered for ever: when
    its installation is forgotten, so is what its Deployments' events said."""
    runtime = Runtime(settings=Settings(), kube=Kube(ScriptedClient()))
    body = deployment("0.8.2.1", 1, 1, 2, 2, 2)
    assert runtime.deployment_facts_changed("ns", "acme", body)
    assert not runtime.deployment_facts_changed("ns", "acme", body)
    assert runtime.deployment_facts_changed("ns", "other", deployment("0.8.2.1", 1, 1, 2, 2, 2))
    runtime.forget("ns", "acme")
    assert runtime.deployment_facts_changed("ns", "acme", body)  # seen as new again
    assert not runtime.deployment_facts_changed("ns", "other", deployment("0.8.2.1", 1, 1, 2, 2, 2))
    runtime.forget("ns", "acme")
    runtime.forget("ns", "other")
    assert runtime._deployment_facts == {}


def relabelled(body: dict[str, Any], instance: str) -> dict[str, Any]:
    return {**body, "metadata": {**body["metadata"], "labels": {LABEL_INSTANCE: instance}}}


def test_a_relabelled_child_wakes_the_installation_it_left_and_its_next_pass_lists_again() -> None:
    """A Deployment or Job whose instance label is changed to another installation's: the installation it
    belonged to wakes too, and neither uses its kept listing of that kind."""
    async def scenario() -> list[set[str]]:
        runtime = Runtime(settings=Settings(), kube=Kube(ScriptedClient()))
        wakes = {name: asyncio.Event() for name in ("acme", "other")}
        for name, wake in wakes.items():
            runtime.wakeups[("ns", name)] = wake
        woken: list[set[str]] = []

        async def event(handler: Any, kind: str | None, body: dict[str, Any]) -> None:
            for wake in wakes.values():
                wake.clear()
            await handler(type=kind, body=body, namespace="ns", name=body["metadata"]["name"],
                          labels=body["metadata"]["labels"], memo={"runtime": runtime})
            woken.append({name for name, wake in wakes.items() if wake.is_set()})

        api = deployment("0.8.2.1", 1, 1, 2, 2, 2)
        await event(handlers.deployment_changed, None, api)
        await event(handlers.deployment_changed, "MODIFIED", relabelled(api, "other"))
        await event(handlers.deployment_changed, "MODIFIED", relabelled(api, "other"))
        job = {"metadata": {"name": "acme-install", "namespace": "ns", "labels": {LABEL_INSTANCE: "acme"}}}
        await event(handlers.job_changed, None, job)
        await event(handlers.job_changed, "MODIFIED", relabelled(job, "other"))
        assert runtime._deployment_facts.keys() == {("ns", "other")}, "acme no longer has it"
        return woken

    assert asyncio.run(scenario()) == [{"acme"}, {"acme", "other"}, set(), {"acme"}, {"acme", "other"}]


def test_only_the_installations_watch_and_the_heartbeat_are_evidence_of_liveness() -> None:
    """The heartbeat compares a fresh listing of installations with what their watch delivered; events of
    the other watches (children, namespaces, policies) say nothing of that watch, so they do not keep
    /healthz alive while it stays behind."""
    async def scenario() -> float:
        runtime = Runtime(settings=Settings(), kube=Kube(ScriptedClient()))
        runtime.last_watch_event = -1.0
        memo = {"runtime": runtime}
        api = deployment("0.8.2.1", 1, 1, 2, 2, 2)
        await handlers.deployment_changed(type=None, body=api, namespace="ns", name="acme-api",
                                          labels=api["metadata"]["labels"], memo=memo)
        job = {"metadata": {"name": "acme-install", "namespace": "ns", "resourceVersion": "7"}}
        await handlers.job_changed(type=None, body=job, namespace="ns", name="acme-install",
                                   labels={LABEL_INSTANCE: "acme"}, memo=memo)
        assert {kind: d.versions for kind, d in runtime.delivered.items()} == {
            "installations": {}, "deployments": {}, "jobs": {("ns", "acme-install"): "7"}}  # api has no rv
        await handlers.namespace_changed(type="MODIFIED", body={"metadata": {"name": "ns", "labels": {"a": "b"}}},
                                         memo=memo)
        await handlers.policy_changed(memo=memo, type="MODIFIED", name="keep",
                                      meta={"name": "keep", "generation": 2}, body={"metadata": {"name": "keep"}})
        return runtime.last_watch_event

    assert asyncio.run(scenario()) == -1.0


def test_an_installation_forgotten_takes_what_its_passes_applied_with_it() -> None:
    """Its loop stops on deletion, so no pass of it finds it gone: forgetting it drops its apply records."""
    runtime = Runtime(settings=Settings(), kube=Kube(ScriptedClient()))
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "acme-api", "namespace": "ns"}}
    runtime.reconciler.applied.record(("ns", "acme"), manifest, deployment("0.8.2.1", 1, 1, 2, 2, 2))
    runtime.reconciler.applied.record(("ns", "other"), manifest, deployment("0.8.2.1", 1, 1, 2, 2, 2))
    runtime.forget("ns", "acme")
    assert len(runtime.reconciler.applied) == 1


def test_an_installation_forgotten_closes_its_elasticsearch_connection() -> None:
    """Its loop stops on deletion, so no pass of it finds it gone: forgetting it closes the client it
    alone used (a fleet that churns installations would otherwise keep a connection pool for each)."""
    from tests.factories import installation_body, installation_spec
    from tracardi_operator.models import TracardiInstallation

    runtime = Runtime(settings=Settings(), kube=Kube(ScriptedClient()))
    inst = TracardiInstallation.model_validate(installation_body(installation_spec(), name="acme", namespace="ns"))
    runtime.reconciler.connections.adapter(inst)
    assert len(runtime.reconciler.connections) == 1
    runtime.forget("ns", "acme")
    assert len(runtime.reconciler.connections) == 0



def _heartbeats(deployments: dict[str, str], delivered: dict[str, str], seconds: float = 0.3) -> tuple[int, int]:
    """Heartbeats for `seconds` with no installation, the Deployments of `deployments` (name → rv) listed
    and those of `delivered` delivered by their watch: (the times the liveness clock was touched, the
    Deployment listings)."""
    def answer(method: str, path: str, query: dict[str, str], body: Any) -> Any:
        if path == "/apis/apps/v1/deployments":
            assert query == {"labelSelector": "app.kubernetes.io/managed-by=tracardi-operator"}
            return {"items": [{"metadata": {"namespace": "ns", "name": n, "resourceVersion": rv}}
                              for n, rv in deployments.items()]}
        return {"items": None}

    client = ScriptedClient(answer)
    touches: list[float] = []

    async def scenario() -> None:
        runtime = Runtime(settings=Settings(), kube=Kube(client))
        for name, rv in delivered.items():
            runtime.child_moved("deployments", "ns", name, "acme", resource_version=rv)
        runtime.touch = lambda: touches.append(0.0)  # type: ignore[method-assign]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.heartbeat(every=0.02, children_every=0.02), seconds)

    asyncio.run(scenario())
    return len(touches), sum(path == "/apis/apps/v1/deployments" for _, path, _, _ in client.sent)


def test_the_heartbeat_holds_the_deployments_watch_to_its_listing(caplog: Any) -> None:
    """A Deployment whose change (or creation) its watch never delivered keeps the liveness clock still
    from the second heartbeat that sees it (the first only notes the lag: a stream may be a moment
    behind); delivered, every heartbeat moves the clock."""
    touched, listings = _heartbeats({"acme-api": "9"}, {"acme-api": "9"})
    assert listings >= 3
    assert touched >= listings - 1  # the last listing may be cut short by the end of the run
    assert _heartbeats({"acme-api": "9"}, {"acme-api": "5"})[0] == 1
    assert "the watch of deployments has not delivered changes of 1 of them" in caplog.text
    assert _heartbeats({"acme-api": "9", "acme-gui": "2"}, {"acme-api": "9"})[0] == 1, "created without an event"


def test_the_heartbeat_lists_children_less_often_than_installations() -> None:
    def count(children_every: float) -> tuple[int, int]:
        client = ScriptedClient(lambda *_: {"items": None})

        async def scenario() -> None:
            runtime = Runtime(settings=Settings(), kube=Kube(client))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.heartbeat(every=0.02, children_every=children_every), 0.5)

        asyncio.run(scenario())
        paths = [path for _, path, _, _ in client.sent]
        return sum("tracardiinstallations" in p for p in paths), sum(p.endswith("/deployments") for p in paths)

    installations, deployments = count(0.2)
    assert installations >= 10
    assert 1 <= deployments <= 3
