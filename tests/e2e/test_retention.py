"""Retention end to end (issue 5), on devenv with the Tracardi simulator and the operator process.

One history (0.8.0 seeded, bumped to 0.8.1, then to 0.8.2.1) is built once for the tests of
`TestOnOneHistory`; those that must not delete run first and leave it as they found it, the one that
deletes runs last. Rollback after a keep-1 run and the headroom checks build their own installation.
Index names depend only on version and tenant, so only one installation exists at a time.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import GROUP, PLURAL, POLICIES, VERSION, Installations
from tests.factories import wait_for

SEED = {"profiles": 12, "events": 30, "sessions": 10}
OLD_PAIRS = ("080.fa73a", "08x.01506")
LIVE_PAIR = "0820.ffe49"
# Planted by the tests: another tenant's indices (with their own, consistent _meta), a non-Tracardi
# index, and one named like ours whose _meta disagrees with its name.
PLANTED: dict[str, dict[str, str] | None] = {
    "0820.abcde.tracardi-flow": {"version": "0820", "name": "abcde"},
    "080.zzzzz.tracardi-profile-2024-q1": {"version": "080", "name": "zzzzz"},
    "orders-2024": None,
    "080.fa73a.tracardi-planted": {"version": "999", "name": "fa73a"},
}
_INDEX_OF = re.compile(r"^(?:prod-|static-)?(?P<pair>[0-9][0-9a-z]*\.[^.]+)\.tracardi-")
_TEMPLATE_OF = re.compile(r"^(?:prod-)?template\.(?P<pair>[0-9][0-9a-z]*\.[^.]+)\.tracardi-")


# ---------------------------------------------------------------------------------------------------
# Helpers


def _log(message: str) -> None:
    print(f"  e2e retention: {message}", file=sys.stderr, flush=True)


def _indices(es: Any) -> dict[str, int]:
    """Every index but system ones (dot-names) with its document count, after a refresh."""
    es.indices.refresh(index="*,-.*", expand_wildcards="open,closed", ignore_unavailable=True)
    rows = es.cat.indices(index="*,-.*", format="json", h="index,docs.count", expand_wildcards="open,closed")
    return {r["index"]: int(r["docs.count"] or 0) for r in rows}


def _templates(es: Any) -> set[str]:
    return {t["name"] for t in es.indices.get_index_template().get("index_templates", [])}


def _pair_of_index(name: str) -> str | None:
    match = _INDEX_OF.match(name)
    return match["pair"] if match else None


def _pair_of_template(name: str) -> str | None:
    match = _TEMPLATE_OF.match(name)
    return match["pair"] if match else None


def _owned(names: set[str] | dict[str, int], pairs: tuple[str, ...], of: Any) -> set[str]:
    return {n for n in names if of(n) in pairs and n not in PLANTED}


def _plant(es: Any) -> None:
    for name, meta in PLANTED.items():
        mappings: dict[str, Any] = {"properties": {"n": {"type": "integer"}}}
        if meta is not None:
            mappings["_meta"] = meta
        es.indices.create(index=name, settings={"number_of_shards": 1, "number_of_replicas": 0}, mappings=mappings)
        es.index(index=name, id="planted", document={"n": 1}, refresh=True)


def _unplant(es: Any) -> None:
    es.indices.delete(index=",".join(PLANTED), ignore_unavailable=True)


def _clean_es(es: Any) -> None:
    """What the `clean_es` fixture does, for the class-scoped history (plus what the tests plant)."""
    _unplant(es)
    es.indices.delete(index="*tracardi*,-.*", expand_wildcards="all", ignore_unavailable=True)
    for name in _templates(es):
        if ".tracardi-" in name:
            es.indices.delete_index_template(name=name)


def _states(obj: dict[str, Any]) -> dict[str, str]:
    return {f"{v['dbVersion']}.{v['tenant']}": v["state"] for v in (obj.get("status") or {}).get("versions", [])}


def _alias_ids(es: Any, alias: str) -> list[str]:
    res = es.search(index=alias, query={"match_all": {}}, size=10000, _source=False)
    return sorted(h["_id"] for h in res["hits"]["hits"])


class Policies:
    """TracardiRetentionPolicies (cluster-scoped) made by one test, all deleted at its end."""

    def __init__(self, kube_api: Any) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(kube_api)
        self.suffix = uuid.uuid4().hex[:6]
        self.made: list[str] = []

    def name(self, base: str) -> str:
        return f"{base}-{self.suffix}"

    def create(self, base: str, **spec: Any) -> str:
        name = self.name(base)
        self.api.create_cluster_custom_object(GROUP, VERSION, POLICIES, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "TracardiRetentionPolicy",
            "metadata": {"name": name}, "spec": spec})
        self.made.append(name)
        return name

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.api.patch_cluster_custom_object(GROUP, VERSION, POLICIES, name, {"spec": spec})

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.api.get_cluster_custom_object(GROUP, VERSION, POLICIES, name))

    def delete_all(self) -> None:
        from kubernetes.client.rest import ApiException

        for name in self.made:
            try:
                self.api.delete_cluster_custom_object(GROUP, VERSION, POLICIES, name)
            except ApiException as e:
                if e.status != 404:
                    raise
        self.made.clear()


@pytest.fixture
def policies(kube_api: Any) -> Iterator[Policies]:
    made = Policies(kube_api)
    yield made
    made.delete_all()


def _for_namespace(namespace: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


class StatusRecorder:
    """Every status the installation goes through, from a watch: nothing is missed between polls."""

    def __init__(self, inst: Installations, name: str) -> None:
        from kubernetes import watch

        self.inst, self.name = inst, name
        self.seen: list[dict[str, Any]] = []
        self._watch = watch.Watch()
        self._start_rv = inst.get(name)["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        stream = self._watch.stream(
            self.inst.api.list_namespaced_custom_object, GROUP, VERSION, self.inst.namespace, PLURAL,
            field_selector=f"metadata.name={self.name}", resource_version=self._start_rv, timeout_seconds=300)
        for event in stream:
            self.seen.append(dict(event["object"].get("status") or {}))

    def __enter__(self) -> StatusRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._watch.stop()
        # The stream ends on its next event or at its timeout; the thread is a daemon either way.
        self._thread.join(timeout=1)


def _build_history(inst: Installations, es: Any, name: str = "acme") -> dict[str, list[str]]:
    """0.8.0 seeded, then 0.8.1, then 0.8.2.1; returns the seeded ids per `<context>/<resource>`."""
    from devenv import seed as seeder
    from devenv.simulator.versions import version_for_tag

    started = time.monotonic()
    inst.create(name, "0.8.0")
    inst.wait_settled(name, "0.8.0")
    report = seeder.seed(es, version_for_tag("0.8.0"), counts=seeder.SeedCounts(**SEED))
    inst.patch_spec(name, {"version": "0.8.1"})
    inst.wait_settled(name, "0.8.1", timeout=600)
    inst.patch_spec(name, {"version": "0.8.2.1"})
    obj = inst.wait_settled(name, "0.8.2.1", timeout=600)
    assert _states(obj) == {"080.fa73a": "Superseded", "08x.01506": "Superseded", LIVE_PAIR: "Current"}
    _log(f"history 0.8.0 -> 0.8.1 -> 0.8.2.1 built in {time.monotonic() - started:.0f}s")
    return {key: sorted(ids) for key, ids in report.ids.items()}


def _wait_retention(inst: Installations, name: str, check: Any, what: str, timeout: float = 90) -> dict[str, Any]:
    """Wait until status.retention satisfies `check` (a pass of the operator has published it)."""
    def ready() -> dict[str, Any] | None:
        obj = inst.get(name)
        retention = (obj.get("status") or {}).get("retention") or {}
        return obj if check(retention) else None

    return dict(wait_for(ready, timeout, what))


def _delete_items(retention: dict[str, Any], kind: str) -> set[str]:
    return {i["name"] for i in retention.get("items", []) if i["kind"] == kind and i["action"] == "Delete"}


# ---------------------------------------------------------------------------------------------------
# One history shared by the tests that must leave it intact, then the one that deletes


@pytest.fixture(scope="class")
def history(kube_api: Any, devenv: Any, operator: Any, es: Any) -> Iterator[tuple[Installations, dict[str, Any]]]:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    wait_for(lambda: _has_default_sa(core, namespace), 60, "the default ServiceAccount")
    _clean_es(es)
    inst = Installations(kube_api, namespace, devenv.elasticsearch_url)
    seeded = _build_history(inst, es)
    try:
        yield inst, seeded
    finally:
        try:
            core.delete_namespace(namespace)
        except ApiException as e:
            if e.status != 404:
                raise
        # Its pods (simulated Tracardi processes) must be gone before another test reuses the names.
        wait_for(lambda: not core.list_namespaced_pod(namespace).items, 60, f"the pods of {namespace} to go")


def _has_default_sa(core: Any, namespace: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except ApiException as e:
        if e.status != 404:
            raise
        return False


class TestOnOneHistory:
    def test_retention_disabled_keeps_everything(self, history: Any, es: Any, policies: Policies) -> None:
        inst, _ = history
        before = _indices(es)
        templates_before = _templates(es)
        inst.patch_spec("acme", {"retention": {"enabled": False}})
        try:
            name = policies.create("keep-none", namespaceSelector=_for_namespace(inst.namespace),
                                   keepSupersededVersions=0, minAgeAfterSuperseded="0s")
            obj = _wait_retention(
                inst, "acme",
                lambda r: r.get("policy") == name and any(i.get("reason") == "RetentionDisabled" for i in r["items"]),
                "a plan that keeps everything because retention is disabled")
            retention = obj["status"]["retention"]
            assert not _delete_items(retention, "Index")
            assert not _delete_items(retention, "Template")
            versions = {i["name"]: (i["action"], i["reason"]) for i in retention["items"] if i["kind"] == "Version"}
            assert versions == {p: ("Keep", "RetentionDisabled") for p in OLD_PAIRS}
            assert _states(obj) == {"080.fa73a": "Superseded", "08x.01506": "Superseded", LIVE_PAIR: "Current"}
            assert _indices(es) == before
            assert _templates(es) == templates_before
            assert not [e for e in policies.get(name).get("status", {}).get("governed", [])
                        if e["namespace"] == inst.namespace], "an installation with retention off is not governed"
        finally:
            policies.delete_all()
            inst.patch_spec("acme", {"retention": {"enabled": True}})
        assert _indices(es) == before

    def test_dry_run_then_tie(self, history: Any, es: Any, policies: Policies) -> None:
        inst, _ = history
        before = _indices(es)
        templates_before = _templates(es)
        expected_indices = _owned(before, OLD_PAIRS, _pair_of_index)
        expected_templates = _owned(templates_before, OLD_PAIRS, _pair_of_template)

        dry = policies.create("dry", namespaceSelector=_for_namespace(inst.namespace), priority=5,
                              keepSupersededVersions=0, minAgeAfterSuperseded="0s", dryRun=True)
        obj = _wait_retention(inst, "acme", lambda r: r.get("policy") == dry and r.get("dryRun") is True
                              and bool(_delete_items(r, "Index")), "the dry-run plan")
        retention = obj["status"]["retention"]
        assert retention["computedAt"]
        versions = {i["name"]: (i["action"], i["reason"]) for i in retention["items"] if i["kind"] == "Version"}
        assert versions == {p: ("Delete", "Eligible") for p in OLD_PAIRS}
        if len(expected_indices) <= 200:
            assert _delete_items(retention, "Index") == expected_indices
        else:
            assert _delete_items(retention, "Index") <= expected_indices
        assert _delete_items(retention, "Template") == expected_templates
        assert "would delete" in retention["message"]
        governed = wait_for(lambda: policies.get(dry).get("status", {}).get("governed"), 90,
                            "the dry-run policy's status.governed")
        assert governed == [{"namespace": inst.namespace, "name": "acme"}]
        assert _indices(es) == before, "a dry run deletes nothing"
        assert _templates(es) == templates_before, "a dry run deletes nothing"

        # A second policy of the same priority, not a dry run: a tie, so no policy applies at all.
        other = policies.create("tied", namespaceSelector=_for_namespace(inst.namespace), priority=5,
                                keepSupersededVersions=0, minAgeAfterSuperseded="0s")
        cond = inst.wait_condition("acme", "RetentionPolicyResolved", "False", timeout=90, reason="PolicyTie")
        assert dry in cond["message"]
        assert other in cond["message"]
        policies.patch(dry, {"dryRun": False})  # now both would delete, were either to apply
        obj = _wait_retention(inst, "acme", lambda r: sorted(r.get("conflictingPolicies", [])) == sorted([dry, other])
                              and r.get("policy") is None, "the tie in status.retention")
        retention = obj["status"]["retention"]
        assert not _delete_items(retention, "Index")
        assert not _delete_items(retention, "Template")
        wait_for(lambda: not policies.get(dry).get("status", {}).get("governed")
                 and not policies.get(other).get("status", {}).get("governed"), 90,
                 "neither tied policy to govern the installation")
        # A pass after the dryRun change has run once a resync went by; nothing may have gone.
        time.sleep(25)
        cond = inst.condition("acme", "RetentionPolicyResolved")
        assert cond is not None
        assert cond["status"] == "False"
        assert cond["reason"] == "PolicyTie"
        assert _indices(es) == before, "a tie deletes nothing"
        assert _templates(es) == templates_before, "a tie deletes nothing"
        assert _states(inst.get("acme")) == {"080.fa73a": "Superseded", "08x.01506": "Superseded",
                                             LIVE_PAIR: "Current"}

    def test_keep_none_deletes_exactly_the_superseded_versions(
        self, history: Any, es: Any, policies: Policies
    ) -> None:
        inst, seeded = history
        _plant(es)
        try:
            before = _indices(es)
            templates_before = _templates(es)
            doomed = _owned(before, OLD_PAIRS, _pair_of_index)
            doomed_templates = _owned(templates_before, OLD_PAIRS, _pair_of_template)
            # The history really has what the acceptance names: every context and partitions.
            for pair in OLD_PAIRS:
                mine = {n for n in doomed if _pair_of_index(n) == pair}
                assert any(n.startswith("prod-") for n in mine)
                assert any(n.startswith("static-") for n in mine)
                assert any(re.search(r"-\d{4}-(\d{1,2}|q[1-4]|year)$", n) for n in mine), pair
                assert any(n.startswith("prod-") for n in doomed_templates if _pair_of_template(n) == pair)
            assert any(v for n, v in before.items() if n in doomed), "seeded documents are in the old versions"
            live = {n: c for n, c in before.items() if _pair_of_index(n) == LIVE_PAIR}
            assert live
            assert sum(live.values()) > 0

            with StatusRecorder(inst, "acme") as recorder:
                started = time.monotonic()
                name = policies.create("keep-none", namespaceSelector=_for_namespace(inst.namespace),
                                       keepSupersededVersions=0, minAgeAfterSuperseded="0s")
                obj = wait_for(lambda: (o := inst.get("acme")) and all(
                    _states(o).get(p) == "Deleted" for p in OLD_PAIRS) and o, 120, "080 and 08x Deleted")
                _log(f"keep-0 run done {time.monotonic() - started:.1f}s after the policy was created")

            after = _indices(es)
            assert set(before) - set(after) == doomed, "exactly the old versions' indices are gone"
            assert set(after) - set(before) == set(), "nothing new appeared"
            assert {n: after[n] for n in live} == live, "the live version keeps every index and document"
            assert {n: after[n] for n in PLANTED} == {n: 1 for n in PLANTED}, "planted indices are untouched"
            assert _templates(es) == templates_before - doomed_templates
            for context, prefix in (("staging", ""), ("production", "prod-")):
                for resource in ("profile", "event", "session"):
                    ids = _alias_ids(es, f"{prefix}ffe49.tracardi-{resource}")
                    assert ids == seeded[f"{context}/{resource}"], f"{context} {resource} still readable"

            status = obj["status"]
            assert _states(obj) == {"080.fa73a": "Deleted", "08x.01506": "Deleted", LIVE_PAIR: "Current"}
            for record in status["versions"]:
                assert bool(record.get("deletedAt")) == (record["state"] == "Deleted")
            # The plan was published before anything went, with every name that then went.
            published = [s.get("retention") or {} for s in recorder.seen
                         if all(_states({"status": s}).get(p) == "Superseded" for p in OLD_PAIRS)]
            plans = [r for r in published if r.get("policy") == name and _delete_items(r, "Index")]
            assert plans, "a plan naming the deletions was in status before they happened"
            plan = plans[-1]
            assert plan.get("dryRun") is False
            assert {i["name"]: i["action"] for i in plan["items"] if i["kind"] == "Version"} == {
                p: "Delete" for p in OLD_PAIRS}
            listed = _delete_items(plan, "Index")
            assert listed == doomed if len(doomed) <= 200 else listed <= doomed
            assert _delete_items(plan, "Template") == doomed_templates
            assert not (listed & set(PLANTED))
            final = status["retention"]
            assert final["policy"] == name
            assert final.get("deletedIndices") == len(doomed)
            assert final.get("lastRunAt")
            events = [m for r, m in inst.events("acme") if r == "IndicesDeleted"]
            assert events, "an Event says what was deleted"
            assert all(p in events[-1] for p in OLD_PAIRS)
            assert f"deleted {len(doomed)} indices" in events[-1]

            # Later passes keep the record and delete nothing more.
            time.sleep(25)
            assert _indices(es) == after
            final = inst.get("acme")["status"]["retention"]
            assert final.get("deletedIndices") == len(doomed)
            assert final.get("lastRunAt")
        finally:
            _unplant(es)


# ---------------------------------------------------------------------------------------------------
# Rollback after a keep-1 run; headroom


def test_keep_one_then_roll_back_to_the_kept_version(
    installations: Installations, es: Any, policies: Policies
) -> None:
    seeded = _build_history(installations, es)
    installations.api.patch_namespaced_custom_object(GROUP, VERSION, installations.namespace, PLURAL, "acme",
                                                     {"metadata": {"labels": {"retention": "keep-one"}}})
    before = _indices(es)
    templates_before = _templates(es)
    doomed = _owned(before, ("080.fa73a",), _pair_of_index)
    doomed_templates = _owned(templates_before, ("080.fa73a",), _pair_of_template)
    name = policies.create("keep-one", selector={"matchLabels": {"retention": "keep-one"}},
                           keepSupersededVersions=1, minAgeAfterSuperseded="0s")
    obj = wait_for(lambda: (o := installations.get("acme")) and _states(o).get("080.fa73a") == "Deleted" and o,
                   120, "080 Deleted")
    assert _states(obj) == {"080.fa73a": "Deleted", "08x.01506": "Superseded", LIVE_PAIR: "Current"}
    kept = {i["name"]: (i["action"], i["reason"]) for i in obj["status"]["retention"]["items"]
            if i["kind"] == "Version"}
    assert kept.get("08x.01506") == ("Keep", "RetainedForRollback")
    after = _indices(es)
    assert set(before) - set(after) == doomed
    assert {n: c for n, c in after.items()} == {n: c for n, c in before.items() if n not in doomed}
    assert _templates(es) == templates_before - doomed_templates
    assert obj["status"]["retention"]["policy"] == name

    # Back to the kept version: allowed, images roll back, its data is still there.
    installations.patch_spec("acme", {"version": "0.8.1"})
    obj = installations.wait_settled("acme", "0.8.1", timeout=300)
    accepted = installations.condition("acme", "SpecAccepted")
    assert accepted is not None
    assert accepted["status"] == "True"
    assert set(installations.images().values()) == {
        "tracardi/tracardi-api:0.8.1", "tracardi/tracardi-gui:0.8.1", "tracardi/update-worker:0.8.1"}
    assert _states(obj)["08x.01506"] == "Current"
    assert _states(obj)["080.fa73a"] == "Deleted"
    for context, prefix in (("staging", ""), ("production", "prod-")):
        assert _alias_ids(es, f"{prefix}01506.tracardi-profile") == seeded[f"{context}/profile"]


def _shards_in_use(es: Any) -> int:
    health = es.cluster.health()
    return int(health["active_shards"]) + int(health["unassigned_shards"])


def test_headroom_low_and_an_upgrade_that_would_not_fit(installations: Installations, es: Any) -> None:
    installations.create("acme", "0.8.0")
    installations.wait_settled("acme", "0.8.0")
    jobs_before = installations.jobs()
    deployments_before = set(installations.images())
    in_use = _shards_in_use(es)
    limit = in_use + 10  # above 80% used, and far too little for 0.8.1's ~72 new shards
    es.cluster.put_settings(body={"transient": {"cluster.max_shards_per_node": limit}})
    try:
        cond = installations.wait_condition("acme", "IndexHeadroomLow", "True", timeout=90)
        assert f"of {limit} shards" in cond["message"]
        headroom = installations.get("acme")["status"]["headroom"]
        assert headroom["shardLimit"] == limit
        assert headroom["usedPercent"] >= 80

        installations.patch_spec("acme", {"version": "0.8.1"})
        cond = installations.wait_condition("acme", "SpecAccepted", "False", timeout=90,
                                            reason="IndexHeadroomInsufficient")
        assert "needs about" in cond["message"]
        assert "room for" in cond["message"]
        time.sleep(5)  # a refused change stays refused: nothing starts on the next passes either
        obj = installations.get("acme")
        assert obj["status"]["currentVersion"] == "0.8.0"
        assert (obj["status"].get("upgrade") or {}).get("toVersion") != "0.8.1"
        assert installations.jobs() == jobs_before, "no install or migration Job"
        assert set(installations.images()) == deployments_before, "no candidate Deployment"
        assert set(installations.images().values()) <= {
            "tracardi/tracardi-api:0.8.0", "tracardi/tracardi-gui:0.8.0", "tracardi/update-worker:0.8.0"}
        reasons = [r for r, _ in installations.events("acme")]
        assert "IndexHeadroomInsufficient" in reasons
    finally:
        es.cluster.put_settings(body={"transient": {"cluster.max_shards_per_node": None}})
