"""Faults under the operator on devenv: the apiserver restarted, a watch that silently stops delivering,
Elasticsearch gone during each Job and a retention run, the operator SIGKILLed at random moments, a
Job's pod process killed mid-copy, a corpus of bad objects, and no secret value anywhere it writes.

Helpers live in tests/e2e/faults.py (shared with benchmarks/bench_kills.py, the 50-kill variant)."""

from __future__ import annotations

import base64
import contextlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv import lifecycle
from devenv.paths import State
from tests.e2e.conftest import (
    GROUP,
    PLURAL,
    POLICIES,
    SECRET_VALUES,
    VERSION,
    Installations,
    OperatorProcess,
    scan_for_secrets,
)
from tests.e2e.faults import (
    FreezingProxy,
    Kubelet,
    Probe,
    copies_twice,
    healthz,
    kill_process_group,
    killed_upgrade,
    metric,
    orchestrators_by_context,
    pod_pid,
    say,
)
from tests.e2e.secretwatch import SecretWatch
from tests.e2e.test_failures import assert_all_readable, fault_env, primary_images, seed, step, wait_pods_gone
from tests.factories import installation_body, installation_spec, wait_for
from tracardi_operator import GROUP_VERSION

RESUME_LIMIT = 30.0
"""Seconds from the apiserver answering again to the operator acting on a change."""


@pytest.fixture
def inst(installations: Installations) -> Iterator[Installations]:
    yield installations
    wait_pods_gone(installations)


def _migration_job_active(inst: Installations, name: str) -> bool:
    jobs = {j.metadata.name: j for j in inst.batch.list_namespaced_job(inst.namespace).items}
    job = jobs.get(name)
    return bool(job is not None and (job.status.active or 0) > 0)


# -- kube-apiserver restarted ----------------------------------------------------------------------------


def _restart_apiserver(down: float) -> float:
    """Stop kube-apiserver for `down` seconds and start it; return the monotonic time it answers again."""
    state = State.default()
    argv = lifecycle.stop_apiserver(state)
    time.sleep(down)
    lifecycle.start_apiserver(state, argv)
    return time.monotonic()


def test_apiserver_restarted_while_idle_and_mid_upgrade(inst: Installations, es: Any,
                                                        operator: OperatorProcess) -> None:
    with Kubelet(operator) as kubelet:
        _apiserver_restarts(inst, es)
    say(f"the operator was restarted {len(kubelet.restarts)} times (it exits when it cannot renew its Lease)")


def _apiserver_restarts(inst: Installations, es: Any) -> None:
    probe = Probe(inst)
    say(f"probe reacts in {probe.react():.1f}s before any restart")
    inst.create("acme", "0.8.0")
    inst.wait_settled("acme", "0.8.0")
    seeded = seed(es, "0.8.0")

    # Idle: nothing in progress.
    answering = _restart_apiserver(down=5)
    probe.react()
    resumed = time.monotonic() - answering
    say(f"apiserver restarted while idle: the operator acted {resumed:.1f}s after it answered again")
    assert resumed < RESUME_LIMIT

    # Mid-upgrade: while the migration Job runs (slow copies, so that it still runs afterwards).
    inst.patch_spec("acme", {"version": "0.8.1", "env": fault_env("slow:150ms")})
    wait_for(lambda: _migration_job_active(inst, "acme-migrate-080-to-08x"), 300, "the migration Job running",
             interval=0.2)
    answering = _restart_apiserver(down=5)
    probe.react()
    resumed = time.monotonic() - answering
    say(f"apiserver restarted mid-migration (step {step(inst, 'acme')}): the operator acted {resumed:.1f}s "
        "after it answered again")
    assert resumed < RESUME_LIMIT
    obj = inst.wait_settled("acme", "0.8.1", timeout=400)
    assert inst.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x"], "one Job per step"
    assert [(v["version"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "Superseded"), ("0.8.1", "Current")]
    assert sum(orchestrators_by_context(es, "0.8.1").values()) == 1, "one POST /migration"
    assert_all_readable(es, "0.8.1", seeded)


# -- a watch that silently stops delivering --------------------------------------------------------------


def test_a_watch_that_stops_delivering_fails_healthz(installations: Installations, devenv: Any,
                                                     tmp_path: Path) -> None:
    """A second operator (a standby: the session's operator holds the Lease) talks to the apiserver
    through a proxy; frozen streams deliver nothing while every new request is answered."""
    inst = installations
    stale = 9.0
    inst.create("canary", "0.8.0", paused=True)
    import urllib.parse

    import yaml

    server = urllib.parse.urlsplit(yaml.safe_load(devenv.kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    proxy = FreezingProxy(server.port or 443, server.hostname or "127.0.0.1")
    watcher = OperatorProcess(devenv, tmp_path)
    watcher.extra_env = {
        "KUBECONFIG": str(proxy.kubeconfig(devenv.kubeconfig, tmp_path / "kubeconfig")),
        "TRACARDI_OPERATOR_WATCH_STALE_SECONDS": str(stale),
        "TRACARDI_OPERATOR_HEALTH_GRACE_SECONDS": "3",
        "TRACARDI_OPERATOR_IDENTITY": "faults-watcher",
    }
    watcher.start()
    try:
        # Alive while idle past the threshold, and while changes are delivered.
        deadline = time.monotonic() + 2 * stale
        n = 0
        while time.monotonic() < deadline:
            code, body = healthz(watcher.port)
            assert code == 200, body
            n += 1
            if n % 8 == 0:
                inst.annotate("canary", {"faults/touch": str(n)})
            time.sleep(0.5)
        frozen = proxy.freeze()
        frozen_at = time.monotonic()
        say(f"froze {frozen} connections of the watcher")

        def unhealthy() -> str | None:
            inst.annotate("canary", {"faults/touch": str(time.monotonic())})
            code, body = healthz(watcher.port)
            return body if code == 503 else None

        body = wait_for(unhealthy, 60, "/healthz to fail", interval=1.0)
        noticed = time.monotonic() - frozen_at
        say(f"/healthz failed {noticed:.1f}s after the watch froze (threshold {stale:.0f}s): {body.strip()}")
        assert "stale" in body
        assert noticed < 4 * stale
        assert "has not delivered changes" in watcher.log.read_text()
    finally:
        watcher.stop()
        proxy.close()


def test_the_heartbeat_notices_a_deployment_change_its_watch_never_delivered(
        kube_client: Any, crds: None, namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    """The heartbeat in this process against devenv's apiserver, with no watch at all: a Deployment the
    operator manages, delivered as it is, keeps the liveness clock moving; changed with nothing delivered
    (a stream that stopped), it stops the clock from the heartbeat after the one that saw the change."""
    import asyncio

    from tracardi_operator.kube import Kube
    from tracardi_operator.labels import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
    from tracardi_operator.runtime import Runtime
    from tracardi_operator.settings import Settings

    kube = Kube(kube_client)
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_INSTANCE: "canary"}
    created = kube.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "canary-api", "namespace": namespace, "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "api", "image": "tracardi/tracardi-api:0.8.2.1"}]}}},
    })
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/canary-api"
    versions: list[str] = [created["metadata"]["resourceVersion"]]

    def settled() -> bool:  # the deployment controller writes its status once or twice after creation
        time.sleep(1.0)
        versions.append(kube_client.request("GET", path)["metadata"]["resourceVersion"])
        return versions[-1] == versions[-2]

    wait_for(settled, 30, "the Deployment's status to settle")
    assert kube.child_versions("deployments", (namespace,)) == {(namespace, "canary-api"): versions[-1]}
    assert kube.child_versions("jobs", (namespace,)) == {}
    runtime = Runtime(settings=Settings(namespaces=(namespace,)), kube=kube)
    runtime.child_moved("deployments", namespace, "canary-api", "canary", resource_version=versions[-1])
    touches: list[float] = []
    runtime.touch = lambda: touches.append(time.monotonic())  # type: ignore[method-assign]

    async def beats(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.heartbeat(every=0.3, children_every=0.3), seconds)

    asyncio.run(beats(1.5))
    assert len(touches) >= 3, "delivered as it is: alive"
    kube_client.request("PATCH", path, body={"metadata": {"annotations": {"faults/changed": "1"}}},
                        content_type="application/merge-patch+json")
    touches.clear()
    asyncio.run(beats(1.5))
    assert len(touches) <= 1, f"a change never delivered, yet the clock moved {len(touches)} times"
    assert "the watch of deployments has not delivered changes of 1 of them" in caplog.text


# -- the operator SIGKILLed at random moments ------------------------------------------------------------

KILLS = 10


def test_killed_at_random_moments_of_080_to_0821_converges(inst: Installations, operator: OperatorProcess,
                                                           es: Any) -> None:
    """Replay a failure with FAULTS_KILL_SEED=<the printed seed>."""
    seed_value = int(os.environ.get("FAULTS_KILL_SEED") or random.SystemRandom().randrange(1_000_000))
    say(f"random kills: seed {seed_value} (replay with FAULTS_KILL_SEED={seed_value})")
    run = killed_upgrade(inst, operator, es, seed_value, KILLS, mean_gap=5.0)
    say(f"seed {seed_value}: converged {run.converged:.0f}s after the bump; kills at "
        + ", ".join(f"{k.at:.0f}s ({k.step})" for k in run.kills))
    assert len(run.kills) == KILLS
    assert not run.problems, f"seed {seed_value}: " + "; ".join(run.problems)


# -- a Job's pod process killed mid-copy -----------------------------------------------------------------


def test_migration_pod_killed_mid_copy_is_finished_by_a_retry(inst: Installations, es: Any) -> None:
    """The migration Job's process SIGKILLed while Tracardi copies (as a node failure would): the Job
    fails (backoffLimit 0), the old version keeps serving, and the retry annotation finishes the
    migration without a second POST /migration and without losing a document."""
    inst.create("acme", "0.8.0", env=fault_env("slow:150ms"))
    inst.wait_settled("acme", "0.8.0", timeout=300)
    seeded = seed(es, "0.8.0")
    inst.patch_spec("acme", {"version": "0.8.1"})
    pods = State.default().pods

    def copying() -> int | None:
        if not orchestrators_by_context(es, "0.8.1"):
            return None  # POST /migration not sent yet: the copy has not begun
        return pod_pid(pods, inst.namespace, "acme-migrate-080-to-08x")

    pid = wait_for(copying, 300, "the migration Job's process while Tracardi copies", interval=0.2)
    kill_process_group(pid)
    say(f"killed the migration Job's process {pid}")
    degraded = wait_for(lambda: (c := inst.condition("acme", "Degraded")) and c["status"] == "True" and c,
                        120, "Degraded after the Job failed")
    say(f"Degraded {degraded['reason']}: {degraded['message'][:200]}")
    assert "acme-migrate-080-to-08x" in degraded["message"]
    assert set(primary_images(inst).values()) == {
        "tracardi/tracardi-api:0.8.0", "tracardi/tracardi-gui:0.8.0", "tracardi/update-worker:0.8.0"}
    assert inst.get("acme")["status"]["currentVersion"] == "0.8.0"
    inst.annotate("acme", {"tracardi.com/retry": "after-node-failure"})
    inst.wait_condition("acme", "Degraded", "False", timeout=60)
    obj = inst.wait_settled("acme", "0.8.1", timeout=400)
    assert inst.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x",
                           "acme-migrate-080-to-08x-r2"]
    assert [(v["version"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "Superseded"), ("0.8.1", "Current")]
    assert sum(orchestrators_by_context(es, "0.8.1").values()) == 1, "Tracardi's migration started twice"
    assert not copies_twice(es, "0.8.1"), "copies started twice"
    assert_all_readable(es, "0.8.1", seeded)


# -- Elasticsearch unavailable ---------------------------------------------------------------------------


def _es_named(inst: Installations, name: str) -> dict[str, Any] | None:
    """A condition that is not OK and names Elasticsearch."""
    status = inst.get(name).get("status") or {}
    for c in status.get("conditions", []):
        bad = (c["status"] == "True") == (c["type"] in ("Degraded", "Progressing"))
        if c["type"] in ("Degraded", "ClusterIdentified") and bad and "elasticsearch" in c["message"].lower():
            return dict(c)
    return None


def _while_es_down(inst: Installations, name: str, down: float) -> dict[str, Any] | None:
    """Stop Elasticsearch, wait up to `down` seconds for a condition naming it, start it again."""
    state = State.default()
    lifecycle.stop_elasticsearch(state)
    say("Elasticsearch stopped")
    try:
        return wait_for(lambda: _es_named(inst, name), down, "a condition naming Elasticsearch", interval=0.5)
    finally:
        lifecycle.start_elasticsearch(state)
        say("Elasticsearch started again")


def _resume(inst: Installations, name: str, version: str, retry: str) -> dict[str, Any]:
    """Once Elasticsearch is back: on by itself, or by the retry annotation when a Job failed."""
    degraded = inst.condition(name, "Degraded")
    if degraded and degraded["status"] == "True":
        inst.annotate(name, {"tracardi.com/retry": retry})
        inst.wait_condition(name, "Degraded", "False", timeout=60)
    return inst.wait_settled(name, version, timeout=400)


def test_elasticsearch_down_during_install_migration_and_retention(inst: Installations, es: Any,
                                                                    kube_api: Any) -> None:
    from kubernetes import client

    # The install Job.
    inst.create("acme", "0.8.0")
    wait_for(lambda: _migration_job_active(inst, "acme-install-080"), 120, "the install Job running", interval=0.2)
    cond = _while_es_down(inst, "acme", 90)
    say(f"install: {cond['type']} {cond['reason']}: {cond['message'][:300]}")
    assert "acme-api-production" not in inst.images(), "no production API before the install is proven"
    _resume(inst, "acme", "0.8.0", "es-back-install")
    seeded = seed(es, "0.8.0")

    # The migration Job (slow copies: Elasticsearch goes while Tracardi copies).
    inst.patch_spec("acme", {"version": "0.8.1", "env": fault_env("slow:150ms")})
    wait_for(lambda: orchestrators_by_context(es, "0.8.1"), 300, "Tracardi copying", interval=0.2)
    cond = _while_es_down(inst, "acme", 90)
    say(f"migration: {cond['type']} {cond['reason']}: {cond['message'][:300]}")
    status = inst.get("acme")["status"]
    assert status["currentVersion"] == "0.8.0", "no switch"
    assert set(primary_images(inst).values()) == {
        "tracardi/tracardi-api:0.8.0", "tracardi/tracardi-gui:0.8.0", "tracardi/update-worker:0.8.0"}
    obj = _resume(inst, "acme", "0.8.1", "es-back-migration")
    # A retry posts again only the copies that failed (so no count of POSTs here): every document
    # readable exactly once is what matters.
    assert_all_readable(es, "0.8.1", seeded)

    # A retention run: a policy that would delete 0.8.0 at once, made while Elasticsearch is gone.
    core = client.CoreV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    label = f"faults-{inst.namespace}"
    core.patch_namespace(inst.namespace, {"metadata": {"labels": {"tracardi.com/retention": label}}})
    assert es.indices.get(index="*080*", expand_wildcards="all")
    state = State.default()
    lifecycle.stop_elasticsearch(state)
    say("Elasticsearch stopped before the policy")
    policy = f"faults-{inst.namespace}"
    custom.create_cluster_custom_object(GROUP, VERSION, POLICIES, {
        "apiVersion": GROUP_VERSION, "kind": "TracardiRetentionPolicy", "metadata": {"name": policy},
        "spec": {"namespaceSelector": {"matchLabels": {"tracardi.com/retention": label}},
                 "keepSupersededVersions": 0, "minAgeAfterSuperseded": "0s", "dryRun": False}})
    try:
        try:
            cond = wait_for(lambda: _es_named(inst, "acme"), 90, "a condition naming Elasticsearch", interval=0.5)
            # Checked while it is gone: a deletion is recorded (Deleting, with the names) before it starts.
            versions = {v["version"]: v["state"] for v in inst.get("acme")["status"]["versions"]}
        finally:
            lifecycle.start_elasticsearch(state)
        say(f"retention: {cond['type']} {cond['reason']}: {cond['message'][:300]}")
        assert versions["0.8.0"] == "Superseded", "nothing deleted while Elasticsearch was gone"
        wait_for(lambda: {v["version"]: v["state"] for v in inst.get("acme")["status"]["versions"]}["0.8.0"]
                 == "Deleted", 120, "retention deleting 0.8.0 once Elasticsearch is back")
        assert _es_named(inst, "acme") is None
        assert_all_readable(es, "0.8.1", seeded)
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, policy)
    assert obj["status"]["currentVersion"] == "0.8.1"


# -- a corpus of bad objects -----------------------------------------------------------------------------

INJECTIONS = ("0.8.1; rm -rf /", "$(id)", "`id`", "0.8.1' OR '1'='1", "../../etc/passwd", "{{7*7}}", "${jndi:ldap://x}",
              "<script>alert(1)</script>", "0.8.1\n", "0.8.1\u0000", "\uff10.\uff18.\uff11", "0.8.1\u202e", "😀")


def _installation_corpus() -> list[tuple[str, str, dict[str, Any]]]:
    """(label, name, spec patch): each merged into a valid, paused spec (a paused installation acts on
    nothing, so an accepted oddity never starts Tracardi)."""
    items: list[tuple[str, str, dict[str, Any]]] = []

    def add(label: str, patch: dict[str, Any], name: str | None = None) -> None:
        items.append((label, name or f"c{len(items)}", patch))

    for v in (123, None, "", "latest", "0.8", "0.8.1.1.1.1", "v0.8.1", "0.8.1-rc1", "9" * 300, "0.7.0",
              "0.8.2.99999999999999999999", 1.5, ["0.8.1"], *INJECTIONS):
        add(f"version={v!r:.40}", {"version": v})
    for hosts in ([], "http://es:9200", [123], ["not a url"], ["http://" + "a" * 3000], ["javascript:alert(1)"],
                  ["http://user:pass@es:9200"], ["ftp://es"], ["http://es:99999"], ["http://é.test:9200"]):
        add(f"hosts={hosts!r:.40}", {"elasticsearch": {"hosts": hosts}})
    for field_, values in (("indexShards", (-1, 0, 10**12, "1", 1.5)), ("indexReplicas", (-1, 10**9)),
                           ("verifyCerts", ("yes",))):
        for v in values:
            add(f"{field_}={v!r}", {"elasticsearch": {"hosts": ["http://es:9200"], field_: v}})
    for ref in ({"name": ""}, {"name": "UPPER_case"}, {"name": "a" * 300}, {"nam": "x"}):
        add(f"credentialsSecretRef={ref!r:.40}", {"elasticsearch": {"hosts": ["http://es:9200"],
                                                                   "credentialsSecretRef": ref}})
    for url in ("", "redis://user:pw@redis:6379", "http://redis", "redis://" + "é" * 100, 5,
                "redis://r:6379/0; FLUSHALL"):
        add(f"redis.url={url!r:.40}", {"redis": {"url": url}})
    add("tokenSecretRef key empty", {"installation": {"adminSecretRef": {"name": "acme-admin"},
                                                      "tokenSecretRef": {"name": "acme-install", "key": ""}}})
    add("adminSecretRef missing", {"installation": {"tokenSecretRef": {"name": "acme-install", "key": "token"}}})
    for env in ([{"name": "1BAD", "value": "x"}], [{"name": "A", "value": "x" * 100000}], [{"value": "x"}],
                [{"name": "A", "value": "😀 ünïcödé"}], [{"name": "A", "value": 5}], "A=1",
                [{"name": "ELASTIC_HOST", "value": "http://evil:9200"}]):
        add(f"env={env!r:.40}", {"env": env})
    for up in ({"strategy": "Sideways"}, {"repair": "Maybe"}, {"allowPrerelease": "true"}, {"strategy": None}):
        add(f"upgrade={up!r}", {"upgrade": up})
    for extra in ({"retention": {"enabled": "no"}}, {"paused": "true"}, {"foo": "bar"},
                  {"replicas": {"api": -1}}, {"replicas": {"worker": 10**10}}, {"replicas": {"gui": "two"}},
                  {"scheduling": {"nodeSelector": {"a": 1}}}, {"scheduling": {"tolerations": [{"effect": "Bogus"}]}},
                  {"scheduling": {"priorityClassName": "a" * 300}},
                  {"scheduling": {"tolerations": [{"key": "k"}] * 40}},
                  {"security": {"pod": {"runAsUser": -1}}}, {"security": {"pod": {"runAsUser": 2**40}}},
                  {"security": {"container": {"capabilities": {"add": ["A" * 100]}}}},
                  {"resources": {"api": {"limits": {"memory": "lots"}}}},
                  {"images": {"pullPolicy": "Sometimes"}}, {"images": {"apiRepository": "x; rm -rf /"}},
                  {"version": "0.8.2.1", "upgrade": {"repair": "Off", "strategy": "Offline", "allowPrerelease": True}}):
        add(f"spec+{extra!r:.50}", extra)
    # Names at the limits (valid otherwise; paused).
    add("name of 63 characters", {}, "n" * 63)
    add("name of 70 characters", {}, "l" * 35 + "-" + "m" * 34)
    add("name of 253 characters", {}, "x" * 253)
    add("dotted name", {}, "a.b.c")
    add("unicode name", {}, "ünïcödé")
    add("upper-case name", {}, "Acme")
    return items


def _policy_corpus(label: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, spec patch) merged into a dry-run policy that selects a label no namespace carries."""
    items: list[tuple[str, dict[str, Any]]] = []
    for field_, values in (
        ("keepSupersededVersions", (-1, 10**12, "1", 1.5, None)),
        ("minAgeAfterSuperseded", ("forever", "-1h", "1000000000h", 5, "", "1h; rm -rf /", "😀")),
        ("priority", (2**63, -(2**63) - 1, "high", 1.5)),
        ("dryRun", ("yes", 0)),
        ("snapshot", ({"repository": ""}, {"repository": "../x"}, {"repository": "a" * 1000}, "backups", {})),
        ("maxDeletionsPerRun", (0, -5, 10**15, "many")),
        ("namespaceSelector", ({"matchLabels": {"bad key!": "v"}},
                               {"matchExpressions": [{"key": "a", "operator": "Bogus"}]},
                               {"matchExpressions": [{"key": "a", "operator": "In"}]}, "all")),
        ("selector", ({"matchExpressions": [{"key": "a", "operator": "In"}]}, {"matchLabels": {"k": "v" * 100}},
                      {"matchLabels": {"k": 5}})),
        ("unknownField", ("x",)),
    ):
        for v in values:
            items.append((f"{field_}={v!r:.40}", {field_: v}))
    return items


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _reported(obj: dict[str, Any], generation_key: bool = True) -> dict[str, Any] | None:
    """The condition that says why an object is not acted on, once the operator has written one."""
    for c in (obj.get("status") or {}).get("conditions", []):
        if (c["type"], c["status"]) in (("SpecAccepted", "False"), ("Paused", "True"), ("Valid", "False"),
                                        ("Valid", "True")):
            return dict(c)
    return None


def test_bad_input_corpus_is_refused_or_reported_without_hot_loops(
        installations: Installations, operator: OperatorProcess, kube_api: Any) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    inst = installations
    custom = client.CustomObjectsApi(kube_api)
    label = f"corpus-{inst.namespace}"
    base = installation_spec("0.8.1", hosts=[inst.es_url], redis_url=lifecycle.read_env(State.default())["REDIS_URL"],
                             paused=True)
    rejected: list[tuple[str, str]] = []
    accepted: list[tuple[str, str]] = []  # (kind, name)
    corpus = _installation_corpus()
    policies = _policy_corpus(label)
    assert len(corpus) + len(policies) >= 100
    for what, name, patch in corpus:
        body = installation_body(_deep_merge(base, patch), name=name)
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, inst.namespace, PLURAL, body)
            accepted.append(("installation", name))
        except ApiException as e:
            rejected.append((what, f"{e.status} {e.body}"))
        except (ValueError, TypeError) as e:  # the client refuses to send it at all
            rejected.append((what, str(e)))
    made: list[str] = []
    base_policy = {"namespaceSelector": {"matchLabels": {"tracardi.com/retention": label}}, "dryRun": True,
                   "keepSupersededVersions": 1}
    try:
        for i, (what, patch) in enumerate(policies):
            name = f"{label}-{i}"
            body = {"apiVersion": GROUP_VERSION, "kind": "TracardiRetentionPolicy",
                    "metadata": {"name": name}, "spec": _deep_merge(base_policy, patch)}
            try:
                custom.create_cluster_custom_object(GROUP, VERSION, POLICIES, body)
                made.append(name)
                accepted.append(("policy", name))
            except ApiException as e:
                rejected.append((what, f"{e.status} {e.body}"))
        say(f"corpus: {len(corpus) + len(policies)} objects, {len(rejected)} rejected at admission, "
            f"{len(accepted)} admitted")
        for what, message in rejected:
            assert message.startswith(("400", "422", "invalid", "Invalid")), f"{what}: {message[:300]}"
            assert "spec" in message or "metadata.name" in message or "name" in message, f"{what}: {message[:300]}"

        def get(kind: str, name: str) -> dict[str, Any]:
            if kind == "policy":
                return dict(custom.get_cluster_custom_object(GROUP, VERSION, POLICIES, name))
            return inst.get(name)

        def all_reported() -> dict[tuple[str, str], dict[str, Any]] | None:
            found = {key: _reported(get(*key)) for key in accepted}
            return found if all(found.values()) else None  # type: ignore[return-value]

        reports = wait_for(all_reported, 120, "a status for every admitted object", interval=2.0)
        for (kind, name), cond in reports.items():
            say(f"  {kind} {name}: {cond['type']}={cond['status']} {cond['reason']}: {cond['message'][:120]}")
            assert cond["reason"], f"{kind} {name}: no reason"
            assert cond["message"], f"{kind} {name}: no message"

        # Quiet afterwards: no status written in a loop, no request storm, still alive.
        versions = {key: get(*key)["metadata"]["resourceVersion"] for key in accepted}
        requests = metric(operator.port, "tracardi_operator_api_requests_total")
        window = 30.0
        time.sleep(window)
        rewritten = [key for key in accepted if get(*key)["metadata"]["resourceVersion"] != versions[key]]
        per_minute = (metric(operator.port, "tracardi_operator_api_requests_total") - requests) * 60 / window
        say(f"corpus: over {window:.0f}s {len(rewritten)} of {len(accepted)} objects rewritten, "
            f"{per_minute:.0f} API requests/min")
        assert operator.proc is not None
        assert operator.proc.poll() is None, "the operator crashed"
        assert len(rewritten) <= len(accepted) // 10, f"status written again and again: {rewritten[:10]}"
        # A resync every 20 s reads each installation and its children (about 5 requests a pass).
        assert per_minute < 60 * len(accepted), f"{per_minute:.0f} requests/min for {len(accepted)} objects"
    finally:
        for name in made:
            custom.delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)


# -- no secret value anywhere the operator writes --------------------------------------------------------


def test_no_secret_value_in_logs_events_or_status(operator: OperatorProcess, secret_watch: SecretWatch,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs after the fault tests of this file (and every e2e file this worker ran before it): the
    operator's logs of this run, the logs of every install and migration Job pod devenv ran, and every
    Event and status of an installation or retention policy written so far (`secret_watch`). Each worker
    scans again when its session ends (`no_secret_value_at_the_end`, tests/e2e/conftest.py), after every
    file it ran."""
    sources, leaks = scan_for_secrets(secret_watch, tmp_path_factory.getbasetemp())
    say(f"secret watch: {secret_watch.seen}; streams listed again {len(secret_watch.interruptions)} times")
    jobs = sum("-install-" in s or "-migrate-" in s for s in sources)
    say(f"secret scan: {len(sources)} sources ({jobs} Job logs), {sum(map(len, sources.values())) >> 10} KiB")
    assert any("operator-" in s for s in sources), "no operator log found"
    assert jobs, "no Job log found"
    assert not leaks, "secret values found:\n" + "\n".join(leaks[:20])


def test_the_secret_scan_names_an_event_that_carries_a_secret(kube_api: Any, secret_watch: SecretWatch,
                                                              namespace: str) -> None:
    """The scan can fail: a secret value planted in an Event, plain and base64-encoded, is named, with
    the Event, within seconds of being written, even once the Event is deleted."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    planted = {"planted-plain": f"login with password={SECRET_VALUES[0]}",
               "planted-b64": "token " + base64.b64encode(SECRET_VALUES[1].encode()).decode()}
    for name, message in planted.items():
        core.create_namespaced_event(namespace, client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=name), reason="Planted", message=message, type="Normal",
            involved_object=client.V1ObjectReference(kind="ConfigMap", name="planted", namespace=namespace)))
    for name in planted:  # gone before the watch is asked: it saw them when they were written
        core.delete_namespaced_event(name, namespace)
    assert not core.list_namespaced_event(namespace, field_selector="reason=Planted").items
    found: list[str] = []

    def named() -> bool:
        found.extend(secret_watch.take(f"Event {namespace}/"))
        return len(found) == 2

    wait_for(named, 30, "the secret watch to name both planted Events")
    assert sorted(found) == [
        f"Event {namespace}/planted-b64: {base64.b64encode(SECRET_VALUES[1].encode()).decode()}",
        f"Event {namespace}/planted-plain: {SECRET_VALUES[0]}",
    ]
