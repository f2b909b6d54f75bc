"""Guards on devenv: what admission refuses, what the operator refuses (nothing changes, SpecAccepted
False with the reason, an Event), spec.paused, and a rollback to a kept version.

The tests share one installation (module scope) and run in file order: 0.8.0 for the refusals, then
paused while bumped to 0.8.1, then the rollback from 0.8.1 to 0.8.0, then a Deployment that loses the
operator's label."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Installations, OperatorProcess
from tests.e2e.faults import say
from tests.e2e.test_failures import PRIMARY, assert_all_readable, seed, wait_pods_gone
from tests.factories import wait_for
from tracardi_operator.labels import LABEL_MANAGED_BY, MANAGED_BY

IMAGES_080 = {"tracardi/tracardi-api:0.8.0", "tracardi/tracardi-gui:0.8.0", "tracardi/update-worker:0.8.0"}


@pytest.fixture(scope="module")
def module_namespace(kube_api: Any) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    name = f"g-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: _has_default_sa(core, name), 60, "the default ServiceAccount")
    yield name
    core.delete_namespace(name)


def _has_default_sa(core: Any, namespace: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        core.read_namespaced_service_account("default", namespace)
    except ApiException as e:
        if e.status != 404:
            raise
        return False
    return True


@pytest.fixture(scope="module")
def acme(kube_api: Any, module_namespace: str, devenv: Any, operator: OperatorProcess,
         es: Any) -> Iterator[tuple[Installations, dict[str, list[str]]]]:
    """acme installed at 0.8.0 with seeded data, on an Elasticsearch cleared of Tracardi indices."""
    es.indices.delete(index="*tracardi*,-.*", expand_wildcards="all", ignore_unavailable=True)
    for t in es.indices.get_index_template().get("index_templates", []):
        if ".tracardi-" in t["name"]:
            es.indices.delete_index_template(name=t["name"])
    inst = Installations(kube_api, module_namespace, devenv.elasticsearch_url)
    inst.create("acme", "0.8.0")
    inst.wait_settled("acme", "0.8.0")
    yield inst, seed(es, "0.8.0")
    wait_pods_gone(inst)


def _api_exception(call: Any) -> Any:
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as info:
        call()
    return info.value


def _snapshot(inst: Installations) -> dict[str, Any]:
    status = inst.get("acme").get("status") or {}
    return {"images": {n: i for n, i in inst.images().items()}, "jobs": inst.jobs(),
            "currentVersion": status.get("currentVersion"), "versions": status.get("versions")}


def _observed(inst: Installations) -> dict[str, Any] | None:
    obj = inst.get("acme")
    return obj if (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"] else None


# -- admission ----------------------------------------------------------------------------------------


def test_admission_rejects_an_unparseable_version(acme: tuple[Installations, Any]) -> None:
    inst, _ = acme
    error = _api_exception(lambda: inst.patch_spec("acme", {"version": "banana"}))
    assert error.status == 422
    assert "version must be a Tracardi image tag" in error.body
    error = _api_exception(lambda: inst.create("other", "banana"))
    assert error.status == 422
    assert "version must be a Tracardi image tag" in error.body
    assert inst.get("acme")["spec"]["version"] == "0.8.0"


def test_admission_rejects_tenant_name_in_env(acme: tuple[Installations, Any]) -> None:
    inst, _ = acme
    error = _api_exception(lambda: inst.patch_spec("acme", {"env": [{"name": "TENANT_NAME", "value": "acme"}]}))
    assert error.status == 422
    assert "set by the operator" in error.body
    assert "env" in error.body
    assert not inst.get("acme")["spec"].get("env")


def test_admission_rejects_credentials_in_the_redis_url(acme: tuple[Installations, Any]) -> None:
    inst, _ = acme
    url = inst.get("acme")["spec"]["redis"]["url"]
    error = _api_exception(lambda: inst.patch_spec("acme", {"redis": {"url": "redis://user:s3cret@redis:6379"}}))
    assert error.status == 422
    assert "passwordSecretRef" in error.body
    assert "s3cret" not in error.body.replace("redis://user:s3cret@redis:6379", "")
    assert inst.get("acme")["spec"]["redis"]["url"] == url


# -- refused by the operator --------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "reason", "hint"), [
    ("0.9.9", "UnknownVersion", "not a Tracardi version this operator knows"),
    ("0.8.2-rc2", "PrereleaseNotAllowed", "allowPrerelease"),
])
def test_a_refused_version_changes_nothing(acme: tuple[Installations, Any], version: str, reason: str,
                                           hint: str) -> None:
    inst, _ = acme
    before = _snapshot(inst)
    inst.patch_spec("acme", {"version": version})
    accepted = inst.wait_condition("acme", "SpecAccepted", "False", timeout=60, reason=reason)
    assert hint in accepted["message"]
    obj = wait_for(lambda: _observed(inst), 30, "the new generation observed")
    assert accepted["observedGeneration"] == obj["metadata"]["generation"]
    progressing = inst.condition("acme", "Progressing")
    assert progressing is not None
    assert progressing["status"] == "False"
    assert progressing["reason"] == reason
    wait_for(lambda: any(r == reason for r, _ in inst.events("acme")), 30, f"an Event {reason}")
    assert [m for r, m in inst.events("acme") if r == reason] == [accepted["message"]], "one Event"
    time.sleep(3)
    assert _snapshot(inst) == before, "nothing changed"
    assert (inst.get("acme")["status"].get("upgrade") or {}).get("step") in (None, "Completed")
    assert inst.condition("acme", "Ready")["status"] == "True"  # type: ignore[index]

    inst.patch_spec("acme", {"version": "0.8.0"})
    inst.wait_settled("acme", "0.8.0", timeout=60)
    assert inst.condition("acme", "SpecAccepted")["status"] == "True"  # type: ignore[index]
    assert _snapshot(inst) == before


# -- paused -------------------------------------------------------------------------------------------


def test_paused_ignores_a_version_bump_until_unpaused(acme: tuple[Installations, Any], es: Any) -> None:
    inst, seeded = acme
    inst.patch_spec("acme", {"paused": True})
    paused = inst.wait_condition("acme", "Paused", "True", timeout=60)
    assert paused["reason"] == "PausedBySpec"
    before = _snapshot(inst)
    inst.patch_spec("acme", {"version": "0.8.1"})
    wait_for(lambda: _observed(inst), 30, "the bump observed")
    time.sleep(10)
    assert _snapshot(inst) == before, "paused: no Job, no new Deployment, no image change"
    status = inst.get("acme")["status"]
    assert status["currentVersion"] == "0.8.0"
    assert (status.get("upgrade") or {}).get("step") in (None, "Completed")
    assert inst.condition("acme", "Paused")["status"] == "True"  # type: ignore[index]

    inst.patch_spec("acme", {"paused": False})
    inst.wait_condition("acme", "Paused", "False", timeout=60)
    obj = inst.wait_settled("acme", "0.8.1", timeout=400)
    assert [(v["version"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "Superseded"), ("0.8.1", "Current")]
    assert_all_readable(es, "0.8.1", seeded)


# -- rollback -----------------------------------------------------------------------------------------


def test_rollback_to_a_kept_version_brings_the_images_back_without_a_job(
        acme: tuple[Installations, Any], es: Any) -> None:
    inst, seeded = acme
    assert inst.get("acme")["status"]["currentVersion"] == "0.8.1", "runs after the paused test"
    jobs_before = inst.jobs()
    inst.patch_spec("acme", {"version": "0.8.0"})
    obj = inst.wait_settled("acme", "0.8.0", timeout=300)
    assert inst.jobs() == jobs_before, "a rollback runs no Job"
    images = inst.images()
    assert set(images) == set(PRIMARY), f"only the primary Deployments: {sorted(images)}"
    assert set(images.values()) == IMAGES_080
    assert [(v["version"], v["dbVersion"], v["state"]) for v in obj["status"]["versions"]] == [
        ("0.8.0", "080", "Current"), ("0.8.1", "08x", "Superseded")]
    rolled = [m for r, m in inst.events("acme") if r == "RolledBack"]
    assert rolled, "an Event RolledBack"
    assert "not carried back" in rolled[0], rolled
    assert_all_readable(es, "0.8.0", seeded)



# -- a child that loses the operator's label ------------------------------------------------------------


def test_a_deployment_that_loses_the_managed_by_label_is_taken_back_at_once(
        acme: tuple[Installations, Any]) -> None:
    """An idle installation's pass keeps its listing of Deployments until a watch event of them; the watch
    selects the operator's own by label, so removing the label must still arrive (as a deletion) and the
    next pass puts the label back on the same object, long before the listing's backstop (15 minutes)."""
    inst, _ = acme
    assert inst.get("acme")["status"]["currentVersion"] == "0.8.0", "runs after the rollback test"
    # Any pass from here on is idle and keeps its listing, and one starts within a resync (20 s, +10 %).
    time.sleep(23)
    before = inst.apps.read_namespaced_deployment("acme-gui", inst.namespace)
    jobs_before = inst.jobs()
    inst.apps.patch_namespaced_deployment("acme-gui", inst.namespace,
                                          {"metadata": {"labels": {LABEL_MANAGED_BY: None}}})
    removed = time.monotonic()

    def labelled() -> Any:
        d = inst.apps.read_namespaced_deployment("acme-gui", inst.namespace)
        return d if (d.metadata.labels or {}).get(LABEL_MANAGED_BY) == MANAGED_BY else None

    after = wait_for(labelled, 60, "the managed-by label back on acme-gui", interval=0.3)
    say(f"the label was back {time.monotonic() - removed:.1f}s after its removal")
    assert after.metadata.uid == before.metadata.uid, "the same Deployment, labelled again (not recreated)"
    assert inst.jobs() == jobs_before, "no Job"
    assert inst.wait_settled("acme", "0.8.0")["status"]["currentVersion"] == "0.8.0"
