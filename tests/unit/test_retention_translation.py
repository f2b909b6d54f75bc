"""The pure translation between the API objects and the retention planner: the history and policies as
the planner reads them (`retention.history`, `retention.selection`), the live pairs of a cluster
(`retention.evidence`) and the plan as status (`retention.status`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.factories import installation_body, installation_spec
from tracardi_operator.indices import VersionId, parse_inventory
from tracardi_operator.models import RetentionStatus, TracardiInstallation, TracardiRetentionPolicy, VersionState
from tracardi_operator.retention import evidence
from tracardi_operator.retention import status as retention_status
from tracardi_operator.retention.decisions import KeepReason
from tracardi_operator.retention.history import history_of
from tracardi_operator.retention.plan import plan_retention
from tracardi_operator.retention.selection import governed_by, policy_of, select_policy

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def installation(name: str = "acme", ns: str = "shop", labels: dict[str, str] | None = None,
                 enabled: bool = True, versions: list[dict[str, Any]] | None = None,
                 upgrade: dict[str, Any] | None = None) -> TracardiInstallation:
    status: dict[str, Any] = {"versions": versions or []}
    if upgrade:
        status["upgrade"] = upgrade
    spec = installation_spec(hosts=("http://es:9200/",), retention={"enabled": enabled})
    return TracardiInstallation.model_validate(
        installation_body(spec, name=name, status=status, namespace=ns, labels=labels or {}, generation=1)
    )


def policy(name: str, priority: int = 0, **spec: Any) -> TracardiRetentionPolicy:
    return TracardiRetentionPolicy.model_validate({"metadata": {"name": name},
                                                   "spec": {"priority": priority, **spec}})


HISTORY = [
    {"version": "0.8.0", "dbVersion": "080", "tenant": "fa73a", "state": "Superseded",
     "supersededAt": "2026-11-01T00:00:00Z"},
    {"version": "0.8.1", "dbVersion": "08x", "tenant": "01506", "state": "Current", "migratedFrom": "0.8.0",
     "migrationVerified": True},
]


def test_history_counts_a_migration_as_verified_only_when_the_verification_was_recorded() -> None:
    history = history_of(installation(versions=HISTORY))
    assert [(h.db, h.state, h.migration_verified) for h in history] == [
        ("080", VersionState.SUPERSEDED, False), ("08x", VersionState.CURRENT, True)]
    unproven = [HISTORY[0], {k: v for k, v in HISTORY[1].items() if k != "migrationVerified"}]
    assert [h.migration_verified for h in history_of(installation(versions=unproven))] == [False, False]
    failed = [HISTORY[0], {**HISTORY[1], "migrationVerified": False}]
    assert [h.migration_verified for h in history_of(installation(versions=failed))] == [False, False]


def test_the_source_of_a_migration_not_recorded_as_verified_is_never_deleted() -> None:
    raw_meta = {"080.fa73a.tracardi-flow": {"mappings": {"_meta": {"version": "080", "name": "fa73a"}}}}
    inventory = parse_inventory([{"index": "080.fa73a.tracardi-flow", "pri": "1", "rep": "0",
                                  "docs.count": "3", "health": "green", "status": "open"}], {}, {}, raw_meta)
    selection = select_policy([policy_of(policy("p", keepSupersededVersions=0, minAgeAfterSuperseded="0s"))],
                                 {}, {})
    unproven = [HISTORY[0], {k: v for k, v in HISTORY[1].items() if k != "migrationVerified"}]
    plan = plan_retention(history_of(installation(versions=unproven)), inventory, policy=selection,
                             retention_enabled=True, cluster_live_versions=[], now=NOW)
    assert plan.indices == ()
    assert [d.reason for d in plan.decisions] == [KeepReason.UNVERIFIED_MIGRATION_SOURCE]


def test_live_pairs_include_both_ends_of_an_upgrade_in_progress() -> None:
    inst = installation(versions=HISTORY, upgrade={
        "kind": "Migrate", "toVersion": "0.8.2.1", "step": "Migrating", "fromDbVersion": "08x",
        "toDbVersion": "0820", "fromTenant": "01506", "toTenant": "ffe49"})
    assert evidence.live_pairs(inst) == {VersionId("08x", "01506"), VersionId("0820", "ffe49")}
    done = installation(versions=HISTORY, upgrade={"kind": "Migrate", "toVersion": "0.8.1", "step": "Completed",
                                                   "toDbVersion": "08x", "toTenant": "01506"})
    assert evidence.live_pairs(done) == {VersionId("08x", "01506")}


def test_cluster_key_ignores_order_and_trailing_slashes() -> None:
    a = installation()
    b = installation()
    b.spec.elasticsearch.hosts = ["http://es:9200"]
    assert evidence.cluster_key(a) == evidence.cluster_key(b)


def test_governed_by_skips_disabled_outranked_and_tied() -> None:
    policies = [policy("low", 1), policy("high", 5, selector={"matchLabels": {"tier": "gold"}})]
    installs = [installation("a", labels={"tier": "gold"}), installation("b"),
                installation("c", labels={"tier": "gold"}, enabled=False)]
    assert governed_by("high", policies, installs, {}) == [("shop", "a")]
    assert governed_by("low", policies, installs, {}) == [("shop", "b")]
    tied = [policy("x", 1), policy("y", 1)]
    assert governed_by("x", tied, installs, {}) == []


def test_plan_status_says_what_would_go_and_why() -> None:
    raw_meta = {"080.fa73a.tracardi-flow": {"mappings": {"_meta": {"version": "080", "name": "fa73a"}}}}
    inventory = parse_inventory([{"index": "080.fa73a.tracardi-flow", "pri": "1", "rep": "0",
                                  "docs.count": "3", "health": "green", "status": "open"}], {}, {}, raw_meta)
    selection = select_policy([policy_of(policy("p", keepSupersededVersions=0, minAgeAfterSuperseded="0s",
                                                       dryRun=True))], {}, {})
    plan = plan_retention(history_of(installation(versions=HISTORY)), inventory, policy=selection,
                             retention_enabled=True, cluster_live_versions=[], now=NOW)
    status = retention_status.status_of_plan(plan, selection, NOW)
    assert status.policy == "p"
    assert status.dry_run is True
    assert "would delete 1 indices" in (status.message or "")
    assert [(i.kind, i.name, i.action) for i in status.items] == [
        ("Version", "080.fa73a", "Delete"), ("Index", "080.fa73a.tracardi-flow", "Delete")]


def test_retention_patch_removes_fields_a_new_plan_lacks_but_keeps_the_last_run() -> None:
    old = {"policy": "p", "dryRun": False, "lastRunAt": "2026-11-27T10:00:00Z", "deletedIndices": 5, "message": "x"}
    new = RetentionStatus(conflicting_policies=["a", "b"], computed_at=NOW, message="tie")
    patch = retention_status.retention_patch(old, new)
    assert patch["policy"] is None
    assert patch["dryRun"] is None
    assert "lastRunAt" not in patch
    assert "deletedIndices" not in patch
    assert patch["conflictingPolicies"] == ["a", "b"]


def test_an_installation_the_model_refuses_still_protects_its_pairs() -> None:
    raw = {"spec": {"elasticsearch": {"hosts": ["http://es:9200/"]}, "version": 7},
           "status": {"versions": [{"dbVersion": "08x", "tenant": "01506", "state": "Current"},
                                   {"dbVersion": "080", "tenant": "fa73a", "state": "Deleted"}],
                      "upgrade": {"toDbVersion": "0820", "toTenant": "ffe49"}}}
    assert evidence.live_pairs_unparsed(raw) == {VersionId("08x", "01506"), VersionId("0820", "ffe49")}


def test_cluster_identity_is_what_the_installation_recorded_and_unknown_is_everywhere() -> None:
    assert evidence.recorded_cluster({"status": {"elasticsearchCluster": "u-1"}}) == "u-1"
    assert evidence.recorded_cluster({"status": {}}) is None
    assert evidence.recorded_cluster({}) is None
    assert evidence.same_cluster("u-1", "u-1")
    assert not evidence.same_cluster("u-1", "u-2")
    assert evidence.same_cluster("u-1", None), "an installation that has not said where it is may be here"


def test_live_pairs_from_evidence_when_the_status_lost_its_current_record() -> None:
    wiped = installation(versions=[])
    wiped.status.current_version = "0.8.2.1"
    assert evidence.live_pairs(wiped) == {VersionId("0820", "ffe49")}
    running = installation(versions=[])
    assert evidence.live_pairs(running, ["registry.example:5000/tracardi/tracardi-api:0.8.1",
                                   "tracardi/tracardi-gui:0.8.1@sha256:abc"]) == {VersionId("08x", "01506")}
    recorded = installation(versions=[{"version": "0.8.1", "dbVersion": "08x", "tenant": "acme1",
                                       "state": "Superseded", "supersededAt": "2026-11-01T00:00:00Z"}])
    assert evidence.live_pairs(recorded, ["tracardi/tracardi-api:0.8.1"]) == {VersionId("08x", "acme1")}, \
        "the tenant the API reported wins over the default one"
    assert evidence.live_pairs_unparsed({"status": {"currentVersion": "0.8.0"}}, ["x/tracardi-api:0.8.1"]) == {
        VersionId("080", "fa73a"), VersionId("08x", "01506")}


def test_the_images_of_a_long_named_installation_are_its_own() -> None:
    from tracardi_operator.labels import label_value

    long_name = "l" * 35 + "-" + "m" * 34
    other = installation(name=long_name).model_dump(by_alias=True, mode="json", exclude_none=True)
    images = {("shop", label_value(long_name)): ["tracardi/tracardi-api:0.8.1"]}
    live, shared = evidence.cluster_live(installation(versions=HISTORY[1:]), "u-1", [other], images)
    assert VersionId("08x", "01506") in live
    other["status"] = {"elasticsearchCluster": "u-1"}
    live, shared = evidence.cluster_live(installation(versions=HISTORY[1:]), "u-1", [other], images)
    assert shared == {f"shop/{long_name}"}, "paired with its installation, not kept as an orphan's"


def test_fleet_evidence_is_shared_and_each_installation_leaves_out_only_itself() -> None:
    from tracardi_operator.labels import label_value

    me = installation(versions=HISTORY[1:])
    listed_me = me.model_dump(by_alias=True, mode="json", exclude_none=True)
    listed_me["status"] = {"currentVersion": "0.8.0"}  # as listed, older than this pass decided it
    beta = installation(name="beta").model_dump(by_alias=True, mode="json", exclude_none=True)
    beta["status"] = {"elasticsearchCluster": "u-2"}
    refused = {"metadata": {"namespace": "shop", "name": "bad"}, "spec": {"version": 7},
               "status": {"elasticsearchCluster": "u-3", "currentVersion": "0.8.0"}}
    images = {("shop", "beta"): ["tracardi/tracardi-api:0.8.0"],
              ("shop", label_value(me.name)): ["tracardi/tracardi-api:0.8.2.1"]}
    fleet = evidence.fleet_evidence([listed_me, beta, refused], images)
    assert [w.parsed for w in fleet.witnesses] == [True, True, False]
    assert not fleet.unclaimed
    mine = {VersionId("08x", "01506"), VersionId("0820", "ffe49")}
    assert evidence.live_on(me, "u-1", fleet) == (mine, set()), \
        "its own record and Deployments; not its listed copy, nor what other clusters run"
    assert evidence.live_on(me, None, fleet)[0] == mine | {VersionId("080", "fa73a")}, \
        "an unknown cluster counts every installation"

    refused["status"]["elasticsearchCluster"] = "u-1"
    beta["status"]["elasticsearchCluster"] = "u-1"
    images[("shop", "beta")] = ["tracardi/tracardi-api:0.8.1"]
    images[("gone", "orphan")] = ["tracardi/tracardi-api:0.8.0"]
    fleet = evidence.fleet_evidence([listed_me, beta, refused], images)
    assert set(fleet.unclaimed) == {("gone", "orphan")}
    live, shared = evidence.live_on(me, "u-1", fleet)
    assert live == mine | {VersionId("080", "fa73a")}
    assert shared == {"shop/beta"}, "beta serves one of its pairs on its cluster; a refused one is never paired"
    del images[("gone", "orphan")]
    refused["status"]["elasticsearchCluster"] = "u-3"
    assert evidence.live_on(me, "u-1", evidence.fleet_evidence([listed_me, beta, refused], images))[0] == mine


def test_an_installation_not_listed_yet_counts_its_own_deployments_once() -> None:
    from tracardi_operator.labels import label_value

    me = installation(versions=[])
    images = {("shop", label_value(me.name)): ["tracardi/tracardi-api:0.8.1"]}
    fleet = evidence.fleet_evidence([], images)
    assert set(fleet.unclaimed) == {("shop", label_value(me.name))}
    live, _ = evidence.live_on(me, "u-1", fleet)
    assert live == {VersionId("08x", "01506")}
