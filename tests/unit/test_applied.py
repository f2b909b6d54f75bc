"""`applied`: when an apply can be skipped: the same manifest, to an object still at the version the last
apply returned (generation where the kind has one, else resourceVersion), less than an hour ago."""

from __future__ import annotations

from typing import Any

from tests.factories import FakeClock
from tracardi_operator.applied import AppliedCache, live_versions

KEY = ("shop", "acme")


def deployment(replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "acme-api", "namespace": "shop"},
            "spec": {"replicas": replicas}}


def stored(generation: int | None, resource_version: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "acme-api", "resourceVersion": resource_version}
    if generation is not None:
        meta["generation"] = generation
    return {"metadata": meta}


def test_a_deployments_status_updates_do_not_make_an_apply_needed_but_a_spec_edit_does() -> None:
    cache = AppliedCache(clock=FakeClock())
    assert cache.needed(KEY, deployment(), {}), "never applied"
    cache.record(KEY, deployment(), stored(3, "100"))
    rollout = live_versions({"deployments": [stored(3, "105")]})  # the controller wrote its status
    assert not cache.needed(KEY, deployment(), rollout)
    edited = live_versions({"deployments": [stored(4, "106")]})  # someone edited the spec
    assert cache.needed(KEY, deployment(), edited)
    assert cache.needed(KEY, deployment(), {}), "deleted (or no longer labelled as ours)"
    assert cache.needed(KEY, deployment(replicas=2), rollout), "another manifest"


def test_a_kind_without_generation_is_compared_by_resource_version() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "acme-api", "namespace": "shop"},
               "spec": {"type": "ClusterIP"}}
    cache = AppliedCache(clock=FakeClock())
    cache.record(KEY, service, stored(None, "7"))
    assert not cache.needed(KEY, service, live_versions({"services": [stored(None, "7")]}))
    assert cache.needed(KEY, service, live_versions({"services": [stored(None, "8")]}))


def test_an_answer_without_a_version_is_never_trusted_and_an_hour_forces_an_apply() -> None:
    clock = FakeClock()
    cache = AppliedCache(reapply_after=3600, clock=clock)
    live = live_versions({"deployments": [stored(3, "100")]})
    cache.record(KEY, deployment(), {"metadata": {}})
    assert cache.needed(KEY, deployment(), live)
    cache.record(KEY, deployment(), stored(3, "100"))
    assert not cache.needed(KEY, deployment(), live)
    clock.sleep(3599)
    assert not cache.needed(KEY, deployment(), live)
    clock.sleep(1)
    assert cache.needed(KEY, deployment(), live)
    cache.forget(KEY)
    assert len(cache) == 0
