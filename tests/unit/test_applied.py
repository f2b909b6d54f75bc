"""`applied`: when an apply can be skipped: the same manifest, to an object still at the version the last
apply returned (generation where the kind has one, else resourceVersion), less than an hour ago."""

from __future__ import annotations

import copy
from typing import Any

from tests.factories import FakeClock
from tracardi_operator.applied import AppliedCache, contains, live_children, stamped

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
    rollout = live_children({"deployments": [stored(3, "105")]})  # the controller wrote its status
    assert not cache.needed(KEY, deployment(), rollout)
    edited = live_children({"deployments": [stored(4, "106")]})  # someone edited the spec
    assert cache.needed(KEY, deployment(), edited)
    assert cache.needed(KEY, deployment(), {}), "deleted (or no longer labelled as ours)"
    assert cache.needed(KEY, deployment(replicas=2), rollout), "another manifest"


def test_a_kind_without_generation_is_compared_by_resource_version() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "acme-api", "namespace": "shop"},
               "spec": {"type": "ClusterIP"}}
    cache = AppliedCache(clock=FakeClock())
    cache.record(KEY, service, stored(None, "7"))
    assert not cache.needed(KEY, service, live_children({"services": [stored(None, "7")]}))
    assert cache.needed(KEY, service, live_children({"services": [stored(None, "8")]}))


def test_an_answer_without_a_version_is_never_trusted_and_an_hour_forces_an_apply() -> None:
    clock = FakeClock()
    cache = AppliedCache(reapply_after=3600, clock=clock)
    live = live_children({"deployments": [stored(3, "100")]})
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


def served(manifest: dict[str, Any], generation: int = 1, **changes: Any) -> dict[str, Any]:
    """The object as the apiserver lists it after an apply of `manifest` (as an item of a list answer):
    defaults added, `changes` made."""
    obj = copy.deepcopy(stamped(manifest))
    del obj["apiVersion"], obj["kind"]  # items of a list answer carry neither
    obj["metadata"] |= {"generation": generation, "resourceVersion": "500", "uid": "u-1",
                        "managedFields": [{"manager": "tracardi-operator"}]}
    obj["spec"] |= {"revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    containers = obj["spec"]["template"]["spec"]["containers"]
    containers.append({"name": "injected-sidecar", "image": "proxy:1"})  # a webhook's addition
    for c in containers:
        c.setdefault("terminationMessagePath", "/dev/termination-log")
    obj["status"] = {"replicas": 1}
    for path, value in changes.items():
        *where, last = path.split("__")
        target = obj
        for step in where:
            target = target[int(step)] if isinstance(target, list) else target[step]
        target[last] = value
    return obj


def full_deployment(image: str = "tracardi/tracardi-api:0.8.2.1") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "acme-api", "namespace": "shop", "labels": {"app.kubernetes.io/instance": "acme"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "acme-api"}},
                     "template": {"metadata": {"labels": {"app": "acme-api"}},
                                  "spec": {"containers": [{"name": "api", "image": image, "args": [],
                                                           "env": [{"name": "A", "value": "1"}]}]}}}}


def test_after_a_restart_a_child_applied_as_the_manifest_is_remembered_not_applied_again() -> None:
    manifest = full_deployment()
    cache = AppliedCache(clock=FakeClock())
    live = live_children({"deployments": [served(manifest, generation=4)]})
    assert not cache.needed(KEY, manifest, live), "the listed object is what the apply left"
    assert len(cache) == 1, "remembered: later passes compare by generation"
    moved = live_children({"deployments": [served(manifest, generation=5)]})
    assert cache.needed(KEY, manifest, moved), "after that, a spec change by anyone applies again"


def test_a_restarted_process_applies_whatever_differs_from_the_manifest() -> None:
    manifest = full_deployment()
    differs = {
        "an image edited by someone": served(manifest, spec__template__spec__containers__0__image="evil:1"),
        "a label value edited": served(manifest, metadata__labels={"app.kubernetes.io/instance": "x"}),
        "no digest (applied by an older operator)": served(manifest, metadata__annotations={}),
        "an env value edited": served(manifest, spec__template__spec__containers__0__env=[{"name": "A", "value": "2"}]),
        "an empty list filled": served(manifest, spec__template__spec__containers__0__args=["--debug"]),
    }
    for why, obj in differs.items():
        cache = AppliedCache(clock=FakeClock())
        assert cache.needed(KEY, manifest, live_children({"deployments": [obj]})), why
        assert len(cache) == 0, why
    newer = full_deployment(image="tracardi/tracardi-api:0.8.2.2")
    cache = AppliedCache(clock=FakeClock())
    assert cache.needed(KEY, newer, live_children({"deployments": [served(manifest)]})), "another manifest"
    assert cache.needed(KEY, manifest, {}), "not there"


def test_a_manifest_that_drops_a_field_has_another_digest() -> None:
    """A field set by an older manifest is still contained in the object: only the digest tells."""
    old = full_deployment()
    old["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "OLD", "value": "x"})
    new = full_deployment()
    cache = AppliedCache(clock=FakeClock())
    assert contains(served(old), stamped(new)) is False  # the annotation's digest differs
    assert cache.needed(KEY, new, live_children({"deployments": [served(old)]}))


def test_contains() -> None:
    assert contains({"a": 1, "b": 2}, {"a": 1})
    assert not contains({"a": 1}, {"a": 2})
    assert contains({"a": 1}, {"b": None}), "a null asks for absence"
    assert not contains({"b": 1}, {"b": None})
    assert not contains({}, {"a": 1}), "a key the object lacks"
    assert contains({}, {"a": []}), "the apiserver drops an empty list"
    assert contains({"a": None}, {"a": {}})
    assert contains({"a": []}, {"a": []})
    assert not contains({"a": {"b": 1}}, {"a": {}}), "an empty map asked for, a filled one held"
    assert not contains({"a": [1]}, {"a": []}), "an empty list asked for, a filled one held"
    assert contains({"l": [{"name": "x", "v": 1, "d": 0}, {"name": "y"}]}, {"l": [{"name": "x", "v": 1}]})
    assert not contains({"l": [{"name": "y"}]}, {"l": [{"name": "x"}]})
    assert contains({"l": [1, 2]}, {"l": [1, 2]})
    assert not contains({"l": [1, 2, 3]}, {"l": [1, 2]}), "unnamed lists are compared whole"
    assert not contains({"n": "1"}, {"n": 1})
