"""A Deployment's watch events wake its installation only when they change what the rollout decisions
read of it (`observe.decision_facts`): not for every step of a rolling update's replica counts."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client

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
        runtime = Runtime(settings=Settings(), kube=Kube(client.ApiClient(client.Configuration())))
        wake = asyncio.Event()
        runtime.wakeups[("ns", "acme")] = wake
        woken: list[bool] = []

        async def event(kind: str | None, body: dict[str, Any]) -> None:
            wake.clear()
            await handlers.deployment_changed(type=kind, body=body, namespace="ns",
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
    runtime = Runtime(settings=Settings(), kube=Kube(client.ApiClient(client.Configuration())))
    body = deployment("0.8.2.1", 1, 1, 2, 2, 2)
    assert runtime.deployment_moved("ns", "acme", body)
    assert not runtime.deployment_moved("ns", "acme", body)
    assert runtime.deployment_moved("ns", "other", deployment("0.8.2.1", 1, 1, 2, 2, 2))
    runtime.forget("ns", "acme")
    assert runtime.deployment_moved("ns", "acme", body)  # seen as new again
    assert not runtime.deployment_moved("ns", "other", deployment("0.8.2.1", 1, 1, 2, 2, 2))
    runtime.forget("ns", "acme")
    runtime.forget("ns", "other")
    assert runtime._deployment_facts == {}


def test_an_installation_forgotten_takes_what_its_passes_applied_with_it() -> None:
    """Its loop stops on deletion, so no pass of it finds it gone: forgetting it drops its apply records."""
    runtime = Runtime(settings=Settings(), kube=Kube(client.ApiClient(client.Configuration())))
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

    runtime = Runtime(settings=Settings(), kube=Kube(client.ApiClient(client.Configuration())))
    inst = TracardiInstallation.model_validate(installation_body(installation_spec(), name="acme", namespace="ns"))
    runtime.reconciler.connections.adapter(inst)
    assert len(runtime.reconciler.connections) == 1
    runtime.forget("ns", "acme")
    assert len(runtime.reconciler.connections) == 0

