"""Failures on devenv with the Tracardi simulator's fault modes (TRACARDI_SIM_FAULTS, set through
spec.env): each leads to the expected condition, the old version keeps serving, and no data is lost.

The helpers at the top are shared with test_guards.py and test_crash_safety.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Installations
from tests.factories import wait_for

SEED = {"profiles": 6, "events": 12, "sessions": 4, "logs": 3, "user_logs": 2, "items": 2, "entities": 3,
        "console_logs": 3, "config": 1}
PRIMARY = ("acme-api", "acme-api-production", "acme-gui", "acme-worker")
PARTITIONED = ("event", "profile", "session", "log", "user-log", "item")
PARTITIONED_080 = ("event", "profile", "session", "log", "user-log")  # 0.8.0 has no item resource


# -- helpers ------------------------------------------------------------------------------------------


def fault_env(faults: str) -> list[dict[str, str]]:
    return [{"name": "TRACARDI_SIM_FAULTS", "value": faults}]


def seed(es: Any, tag: str) -> dict[str, list[str]]:
    """Seed documents of every resource into the installed `tag`; the ids per `<context>/<key>`."""
    from devenv import seed as seeder
    from devenv.simulator.versions import version_for_tag

    report = seeder.seed(es, version_for_tag(tag), counts=seeder.SeedCounts(**SEED))
    return {key: sorted(ids) for key, ids in report.ids.items()}


def readable_ids(es: Any, tag: str, key: str) -> list[str]:
    """Ids readable through `tag`'s alias of resource `key` in `<context>/<key>`."""
    from devenv.simulator.naming import Namespace, default_tenant
    from devenv.simulator.versions import version_for_tag

    version = version_for_tag(tag)
    context, _, resource_key = key.partition("/")
    alias = Namespace(version.db_version, default_tenant(version)).alias(version.resource(resource_key),
                                                                          context)  # type: ignore[arg-type]
    es.indices.refresh(index=alias, ignore_unavailable=True)
    res = es.search(index=alias, query={"match_all": {}}, size=10000, _source=False, ignore_unavailable=True)
    return sorted(h["_id"] for h in res["hits"]["hits"])


def assert_all_readable(es: Any, tag: str, seeded: dict[str, list[str]]) -> None:
    """Every seeded document is readable, exactly once, through `tag`'s aliases."""
    missing = {}
    for key, ids in seeded.items():
        found = readable_ids(es, tag, key)
        assert len(found) == len(set(found)), f"{key}: an id appears twice in {tag}"
        lost = sorted(set(ids) - set(found))
        if lost:
            missing[key] = len(lost)
    assert not missing, f"documents not readable through {tag}'s aliases: {missing}"


def step(installations: Installations, name: str) -> str | None:
    upgrade = (installations.get(name).get("status") or {}).get("upgrade") or {}
    return upgrade.get("step")


def deployment_names(installations: Installations) -> set[str]:
    return set(installations.images())


def primary_images(installations: Installations) -> dict[str, str]:
    return {n: i for n, i in installations.images().items() if n in PRIMARY}


def wait_degraded(installations: Installations, name: str, reason: str, timeout: float = 300) -> dict[str, Any]:
    """Degraded=True with `reason`; fails at once when it settles Degraded with another reason."""
    def degraded() -> dict[str, Any] | None:
        c = installations.condition(name, "Degraded")
        if c and c["status"] == "True":
            assert c["reason"] == reason, f"Degraded for another reason: {c['reason']}: {c['message']}"
            return c
        return None

    return dict(wait_for(degraded, timeout, f"{name} Degraded ({reason})"))


def wait_pods_gone(installations: Installations, timeout: float = 90) -> None:
    """Delete the installation(s) and wait until no pod of the namespace runs: a simulator worker left
    over (e.g. one with task-fails) must never pick up the next test's copies."""
    from tests.e2e.conftest import GROUP, PLURAL, VERSION

    for item in installations.api.list_namespaced_custom_object(GROUP, VERSION, installations.namespace,
                                                                 PLURAL)["items"]:
        installations.api.delete_namespaced_custom_object(GROUP, VERSION, installations.namespace, PLURAL,
                                                          item["metadata"]["name"])
    wait_for(lambda: not installations.core.list_namespaced_pod(installations.namespace).items, timeout,
             "the namespace's pods to be gone", interval=1.0)


@pytest.fixture
def inst(installations: Installations) -> Iterator[Installations]:
    yield installations
    wait_pods_gone(installations)


def installed_080(inst: Installations, es: Any, **spec: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    inst.create("acme", "0.8.0", **spec)
    obj = inst.wait_settled("acme", "0.8.0", timeout=600)
    return obj, seed(es, "0.8.0")


# -- install ------------------------------------------------------------------------------------------


def test_install_partial_is_degraded_and_never_serves_production(inst: Installations) -> None:
    inst.create("acme", "0.8.0", env=fault_env("install-partial"))
    degraded = wait_degraded(inst, "acme", "SchemaIncomplete")
    assert "acme-install-080" in degraded["message"]
    assert "tracardi.com/retry" in degraded["message"]
    obj = inst.get("acme")
    status = obj["status"]
    assert status.get("currentVersion") is None
    assert not status.get("versions")
    ready = inst.condition("acme", "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["reason"] == "NotInstalled"
    assert status["upgrade"]["step"] == "Failed"
    assert "acme-api-production" not in deployment_names(inst), "no production API before an install"
    assert "acme-gui" not in deployment_names(inst)
    assert inst.jobs() == ["acme-install-080"]
    assert ("SchemaIncomplete", degraded["message"]) in inst.events("acme")
    time.sleep(5)
    assert inst.jobs() == ["acme-install-080"], "never retried without the annotation"


# -- migration ----------------------------------------------------------------------------------------


def test_task_fails_keeps_080_serving_and_a_retry_completes(inst: Installations, es: Any) -> None:
    obj, seeded = installed_080(inst, es, env=fault_env("task-fails"))
    versions_before = obj["status"]["versions"]
    images_before = primary_images(inst)
    inst.patch_spec("acme", {"version": "0.8.1"})
    degraded = wait_degraded(inst, "acme", "MigrationTaskFailed")
    assert "acme-migrate-080-to-08x" in degraded["message"]
    status = inst.get("acme")["status"]
    assert status["currentVersion"] == "0.8.0"
    assert status["versions"] == versions_before
    assert status["upgrade"]["step"] == "Failed"
    assert primary_images(inst) == images_before
    assert set(images_before.values()) == {"tracardi/tracardi-api:0.8.0", "tracardi/tracardi-gui:0.8.0",
                                           "tracardi/update-worker:0.8.0"}
    # As designed: the side-by-side API and worker stay for a retry; only the production side serves.
    assert {"acme-api-08x", "acme-worker-08x"} <= deployment_names(inst)
    assert inst.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x"]
    assert inst.condition("acme", "Ready")["status"] == "True"  # type: ignore[index]
    assert_all_readable(es, "0.8.0", seeded)

    # Fix the cause, then ask for a retry.
    inst.patch_spec("acme", {"env": []})
    inst.annotate("acme", {"tracardi.com/retry": "1"})
    inst.wait_condition("acme", "Degraded", "False", timeout=60, reason="Retrying")
    obj = inst.wait_settled("acme", "0.8.1", timeout=600)
    assert inst.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x",
                           "acme-migrate-080-to-08x-r2"]
    assert [(v["version"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "Superseded"), ("0.8.1", "Current")]
    assert obj["status"]["handledRetry"] == "1"
    assert_all_readable(es, "0.8.1", seeded)
    assert not {"acme-api-08x", "acme-worker-08x"} & deployment_names(inst)


def test_migration_skipping_partitioned_indices_is_incomplete(inst: Installations, es: Any) -> None:
    _, seeded = installed_080(inst, es, env=fault_env("migration-skips-partitioned"))
    inst.patch_spec("acme", {"version": "0.8.1"})
    degraded = wait_degraded(inst, "acme", "MigrationIncomplete")
    message = degraded["message"]
    for context in ("staging", "production"):
        for resource in PARTITIONED_080:
            assert f"{context}/{resource}:" in message, f"{context}/{resource} not named in: {message}"
    assert "documents not readable" in message
    status = inst.get("acme")["status"]
    assert status["currentVersion"] == "0.8.0"
    assert set(primary_images(inst).values()) == {
        "tracardi/tracardi-api:0.8.0", "tracardi/tracardi-gui:0.8.0", "tracardi/update-worker:0.8.0"}
    assert_all_readable(es, "0.8.0", seeded)

    # Without the fault, a retry copies what was never listed (and nothing twice).
    inst.patch_spec("acme", {"env": []})
    inst.annotate("acme", {"tracardi.com/retry": "after-fix"})
    inst.wait_condition("acme", "Degraded", "False", timeout=60)
    inst.wait_settled("acme", "0.8.1", timeout=600)
    assert_all_readable(es, "0.8.1", seeded)


def test_http_500_faults_are_retried_and_the_upgrade_completes(inst: Installations, es: Any) -> None:
    _, seeded = installed_080(inst, es, env=fault_env("http-500:0.2"))
    inst.patch_spec("acme", {"version": "0.8.1"})
    obj = inst.wait_settled("acme", "0.8.1", timeout=500)
    assert inst.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x"]
    assert [(v["version"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "Superseded"), ("0.8.1", "Current")]
    assert_all_readable(es, "0.8.1", seeded)


def test_repair_off_stops_081_to_0821_before_the_switch(inst: Installations, es: Any) -> None:
    inst.create("acme", "0.8.1", upgrade={"repair": "Off"})
    inst.wait_settled("acme", "0.8.1", timeout=600)
    seeded = seed(es, "0.8.1")
    inst.patch_spec("acme", {"version": "0.8.2.1"})
    degraded = wait_degraded(inst, "acme", "MigrationIncomplete", timeout=600)
    message = degraded["message"]
    for context in ("staging", "production"):
        for resource in (*PARTITIONED, "entity", "console-log"):
            assert f"{context}/{resource}:" in message, f"{context}/{resource} not named in: {message}"
    assert "documents not readable" in message
    assert "--repair Auto" in message
    status = inst.get("acme")["status"]
    assert status["currentVersion"] == "0.8.1"
    assert [(v["version"], v["state"]) for v in status["versions"]] == [("0.8.1", "Current")]
    assert set(primary_images(inst).values()) == {
        "tracardi/tracardi-api:0.8.1", "tracardi/tracardi-gui:0.8.1", "tracardi/update-worker:0.8.1"}
    assert_all_readable(es, "0.8.1", seeded)


def test_offline_strategy_stops_the_old_production_api_while_migrating(inst: Installations, es: Any) -> None:
    # slow: the copy takes long enough to be watched.
    _, seeded = installed_080(inst, es, upgrade={"strategy": "Offline"}, env=fault_env("slow:300ms"))
    inst.patch_spec("acme", {"version": "0.8.1"})
    seen: dict[str, Any] = {}

    def migrating_offline() -> bool:
        # The Deployment first, then the status: the operator's pass that sees the pods gone writes
        # Ready=False a moment after the scale-down, so a status read before it could be older.
        dep = inst.apps.read_namespaced_deployment("acme-api-production", inst.namespace)
        if dep.spec.replicas != 0 or (dep.status.replicas or 0):
            return False
        obj = inst.get("acme")
        status = obj.get("status") or {}
        if (status.get("upgrade") or {}).get("step") != "Migrating":
            return False
        conds = {c["type"]: c for c in status.get("conditions", [])}
        ready, progressing = conds.get("Ready", {}), conds.get("Progressing", {})
        if ready.get("reason") != "OfflineMigration":
            return False
        seen.update(image=dep.spec.template.spec.containers[0].image, progressing=progressing, ready=ready)
        return True

    wait_for(migrating_offline, 300, "the old production API at 0 replicas while Migrating", interval=0.3)
    assert seen["image"] == "tracardi/tracardi-api:0.8.0"
    assert seen["progressing"]["reason"] == "Migrating"
    assert "Offline" in seen["progressing"]["message"]
    assert "paused" in seen["progressing"]["message"]
    assert seen["ready"]["status"] == "False"
    assert seen["ready"]["reason"] == "OfflineMigration"
    obj = inst.wait_settled("acme", "0.8.1", timeout=600)
    dep = inst.apps.read_namespaced_deployment("acme-api-production", inst.namespace)
    assert dep.spec.replicas == 1
    assert dep.spec.template.spec.containers[0].image == "tracardi/tracardi-api:0.8.1"
    assert obj["status"]["currentVersion"] == "0.8.1"
    assert_all_readable(es, "0.8.1", seeded)
