"""Retention's safety promises end to end, on devenv: one Elasticsearch cluster reached through two
spellings of its address is one cluster, and a half-deleted version is never rolled back to."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Installations
from tests.e2e.test_failures import wait_pods_gone
from tests.e2e.test_retention import Policies, _indices, _log, _owned, _pair_of_index, _states
from tests.factories import wait_for


@pytest.fixture
def made_policies(kube_api: Any) -> Iterator[Policies]:
    made = Policies(kube_api)
    yield made
    made.delete_all()


def _localhost(url: str) -> str:
    """The same Elasticsearch through another name: http://127.0.0.1:P → http://localhost:P."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://localhost:{parts.port}"


def _version_item(obj: dict[str, Any], pair: str) -> tuple[str, str] | None:
    for item in (obj.get("status") or {}).get("retention", {}).get("items", []):
        if item["kind"] == "Version" and item["name"] == pair:
            return item["action"], item["reason"]
    return None


def test_two_spellings_of_one_cluster_keep_each_others_live_indices(
    installations: Installations, es: Any, made_policies: Policies
) -> None:
    other_spelling = _localhost(installations.es_url)
    assert other_spelling != installations.es_url
    installations.create("first", "0.8.1")
    installations.create("second", "0.8.1", elasticsearch={"hosts": [other_spelling], "indexShards": 1,
                                                           "indexReplicas": 0})
    installations.wait_settled("first", "0.8.1", timeout=400)
    installations.wait_settled("second", "0.8.1", timeout=400)
    for name, other in (("first", "second"), ("second", "first")):
        shared = installations.wait_condition(name, "SharedVersionData", "True", timeout=120)
        assert other in shared["message"]
        assert ("PairShared" in {reason for reason, _ in installations.events(name)})
    identities = {(installations.get(n).get("status") or {}).get("elasticsearchCluster") for n in ("first", "second")}
    assert len(identities) == 1
    assert None not in identities
    live_before = _owned(_indices(es), ("08x.01506",), _pair_of_index)
    assert live_before

    made_policies.create("keep-none", namespaceSelector={"matchLabels": {
        "kubernetes.io/metadata.name": installations.namespace}}, keepSupersededVersions=0,
        minAgeAfterSuperseded="0s")
    installations.patch_spec("first", {"version": "0.8.2.1"})
    installations.wait_settled("first", "0.8.2.1", timeout=600)
    obj = wait_for(lambda: (o := installations.get("first")) and _version_item(o, "08x.01506") and o, 120,
                   "first's plan for 08x.01506")
    assert _version_item(obj, "08x.01506") == ("Keep", "LivePair")
    _log("first upgraded with a keep-0 policy; 08x.01506 kept as LivePair")
    wait_for(lambda: (installations.get("first").get("status") or {}).get("retention", {}).get("computedAt"),
             60, "a retention pass after the upgrade")
    assert _owned(_indices(es), ("08x.01506",), _pair_of_index) == live_before, "second's indices untouched"
    assert _states(installations.get("first"))["08x.01506"] == "Superseded"
    installations.wait_settled("second", "0.8.1", timeout=60)
    wait_pods_gone(installations)


def test_a_capped_deletion_then_dry_run_refuses_rollback_with_the_missing_names(
    installations: Installations, es: Any, made_policies: Policies
) -> None:
    installations.create("acme", "0.8.0")
    installations.wait_settled("acme", "0.8.0", timeout=300)
    installations.patch_spec("acme", {"version": "0.8.1"})
    installations.wait_settled("acme", "0.8.1", timeout=600)
    old_before = _owned(_indices(es), ("080.fa73a",), _pair_of_index)
    name = made_policies.create("capped", namespaceSelector={"matchLabels": {
        "kubernetes.io/metadata.name": installations.namespace}}, keepSupersededVersions=0,
        minAgeAfterSuperseded="0s", maxDeletionsPerRun=5)
    obj = wait_for(lambda: (o := installations.get("acme")) and _states(o).get("080.fa73a") == "Deleting" and o,
                   120, "080 Deleting")
    made_policies.patch(name, {"dryRun": True})
    record = next(v for v in obj["status"]["versions"] if v["dbVersion"] == "080")
    assert record["deletedNames"]
    # The names are recorded before their delete request is sent (write-ahead): wait for that request.
    left = wait_for(lambda: (now := _owned(_indices(es), ("080.fa73a",), _pair_of_index)) < old_before and now,
                    30, "some, not all, of its indices gone")
    assert left < old_before, "some indices are gone"
    assert left, "not all"

    installations.patch_spec("acme", {"version": "0.8.0"})
    refused = installations.wait_condition("acme", "SpecAccepted", "False", timeout=120,
                                           reason="RollbackTargetDeleted")
    assert "names are gone" in refused["message"]
    assert any(n in refused["message"] for n in old_before - left)
    incomplete = installations.wait_condition("acme", "DeletionIncomplete", "True", timeout=120)
    assert "a person must decide" in incomplete["message"]
    obj = installations.get("acme")
    assert obj["status"]["currentVersion"] == "0.8.1"
    assert _states(obj)["080.fa73a"] == "Deleting"
    assert set(installations.images().values()) >= {"tracardi/tracardi-api:0.8.1"}
    wait_pods_gone(installations)
