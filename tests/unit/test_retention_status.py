"""What a retention run writes into an installation's status (`retention.status.after_run`), without a
cluster: versions marked Deleted or Deleting, the retention, headroom and cluster conditions, the Events,
and no patch when nothing new is to be said."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tracardi_operator.indices import VersionId
from tracardi_operator.models import (
    Condition,
    HeadroomStatus,
    RetentionItem,
    RetentionStatus,
    TracardiInstallationStatus,
)
from tracardi_operator.retention.history import RetentionPolicy
from tracardi_operator.retention.selection import PolicySelection, SelectionOutcome
from tracardi_operator.retention.status import RunOutcome, StatusChange, after_run, mark_deleting, unreadable

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
OLD = VersionId("080", "fa73a")
MID = VersionId("08x", "01506")
UUID = "cluster-uuid-1"
GOVERNED = PolicySelection(SelectionOutcome.GOVERNED, policy=RetentionPolicy(name="weekly"))


def status(*states: str, **fields: Any) -> TracardiInstallationStatus:
    versions = [("0.8.0", OLD), ("0.8.1", MID), ("0.8.2.1", VersionId("0820", "ffe49"))]
    records = [{"version": tag, "dbVersion": pair.db, "tenant": pair.tenant, "state": state}
               for (tag, pair), state in zip(versions, states, strict=False)]
    return TracardiInstallationStatus.model_validate({"versions": records, **fields})


def outcome(selection: PolicySelection | None = GOVERNED, headroom: HeadroomStatus | None = None,
            **fields: Any) -> RunOutcome:
    return RunOutcome(retention=RetentionStatus(policy="weekly", computed_at=NOW, message="m"),
                      headroom=headroom, selection=selection, **fields)


def reduce(current: TracardiInstallationStatus, result: RunOutcome, written: dict[str, Any] | None = None,
           shared: tuple[str, ...] = (), now: dt.datetime = NOW) -> StatusChange:
    if written is None:
        written = current.model_dump(by_alias=True, mode="json", exclude_none=True)
    return after_run(current, written, result, identity=UUID, shared=shared, now=now, generation=3)


def condition(change: StatusChange, type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in change.patch["conditions"] if c["type"] == type_)
    return found


def applied(current: TracardiInstallationStatus, change: StatusChange) -> TracardiInstallationStatus:
    """The status after the patch, as the next pass reads it."""
    merged = current.model_dump(by_alias=True, mode="json", exclude_none=True) | change.patch
    return TracardiInstallationStatus.model_validate({k: v for k, v in merged.items() if v is not None})


def test_a_governed_deletion_marks_the_deleted_versions_deleted() -> None:
    result = outcome(deleted_pairs=[OLD], deleted_indices=12,
                     events=[("Normal", "IndicesDeleted", "deleted 12 indices")])
    result.retention.last_run_at = NOW
    change = reduce(status("Superseded", "Superseded", "Current"), result)
    states = [(r["version"], r["state"], r.get("deletedAt")) for r in change.patch["versions"]]
    assert states == [("0.8.0", "Deleted", "2026-03-01T12:00:00Z"), ("0.8.1", "Superseded", None),
                      ("0.8.2.1", "Current", None)]
    assert change.patch["retention"]["lastRunAt"] == "2026-03-01T12:00:00Z"
    assert change.patch["elasticsearchCluster"] == UUID
    assert condition(change, "RetentionPolicyResolved")["reason"] == "Governed"
    assert condition(change, "ClusterIdentified")["reason"] == "ClusterUUID"
    assert change.events == [("Normal", "IndicesDeleted", "deleted 12 indices")]


def test_a_current_version_is_never_marked_deleted() -> None:
    change = reduce(status("Current"), outcome(deleted_pairs=[OLD]))
    assert [r["state"] for r in change.patch.get("versions", [{"state": "Current"}])] == ["Current"]


def test_names_begun_are_recorded_as_deleting_and_a_withdrawn_plan_is_incomplete() -> None:
    begun = reduce(status("Superseded", "Current"), outcome(deleting={OLD: ["b", "a"]}))
    (record, _) = begun.patch["versions"]
    assert (record["state"], record["deletedNames"]) == ("Deleting", ["a", "b"])
    # No plan goes on deleting it: DeletionIncomplete, with a Warning Event once.
    assert condition(begun, "DeletionIncomplete")["status"] == "True"
    assert condition(begun, "DeletionIncomplete")["reason"] == "PlanWithdrawn"
    assert [e[:2] for e in begun.events] == [("Warning", "PlanWithdrawn")]
    again = reduce(applied(status("Superseded", "Current"), begun), outcome(deleting={OLD: ["c"]}))
    assert again.patch["versions"][0]["deletedNames"] == ["a", "b", "c"]
    assert again.events == [("Warning", "PlanWithdrawn", condition(again, "DeletionIncomplete")["message"])]


def test_a_deleting_version_the_plan_still_deletes_is_not_incomplete() -> None:
    result = outcome()
    result.retention.items = [RetentionItem(name="080.fa73a", kind="Version", action="Delete", reason="Eligible",
                                            db_version="080", tenant="fa73a")]
    change = reduce(status("Deleting", "Current"), result)
    assert condition(change, "DeletionIncomplete")["status"] == "False"
    assert condition(change, "DeletionIncomplete")["reason"] == "NothingHalfDeleted"
    assert change.events == []


def test_headroom_at_80_percent_or_more_is_low() -> None:
    def low(used: int) -> dict[str, Any]:
        headroom = HeadroomStatus(shards_used=used, shard_limit=1000, used_percent=used // 10, reclaimable_shards=30,
                                  checked_at=NOW)
        return condition(reduce(status("Current"), outcome(headroom=headroom)), "IndexHeadroomLow")

    assert (low(800)["status"], low(800)["reason"]) == ("True", "ShardsNearLimit")
    assert low(800)["message"] == "800 of 1000 shards in use (80%); retention could free 30"
    assert (low(799)["status"], low(799)["reason"]) == ("False", "EnoughShards")


def test_nothing_new_is_an_empty_patch() -> None:
    headroom = HeadroomStatus(shards_used=10, shard_limit=1000, used_percent=1, checked_at=NOW)
    current = status("Superseded", "Current")
    first = reduce(current, outcome(headroom=headroom))
    assert first.patch
    settled = applied(current, first)
    # The next pass: the same plan computed and headroom checked later; only their times moved.
    later = NOW + dt.timedelta(minutes=5)
    result = outcome(headroom=headroom.model_copy(update={"checked_at": later}))
    result.retention.computed_at = later
    again = reduce(settled, result, now=later)
    assert again == StatusChange({}, [])


def test_a_policy_tie_and_no_policy_resolve_to_nothing_deleted() -> None:
    tie = reduce(status("Current"), outcome(PolicySelection(SelectionOutcome.POLICY_TIE, tied=("a", "b"))))
    resolved = condition(tie, "RetentionPolicyResolved")
    assert (resolved["status"], resolved["reason"]) == ("False", "PolicyTie")
    assert resolved["message"] == "tie between a and b: no policy applies: nothing is deleted"
    none = condition(reduce(status("Current"), outcome(PolicySelection(SelectionOutcome.NO_POLICY))),
                     "RetentionPolicyResolved")
    assert (none["status"], none["reason"]) == ("True", "NoPolicy")
    assert none["message"].endswith(": nothing is deleted")
    assert "RetentionPolicyResolved" not in [c["type"] for c in reduce(status("Current"), outcome(None)).patch.get(
        "conditions", [])]


def test_shared_version_data_warns_once() -> None:
    current = status("Current")
    first = reduce(current, outcome(), shared=("team/other",))
    assert condition(first, "SharedVersionData")["reason"] == "PairShared"
    assert [e[:2] for e in first.events] == [("Warning", "PairShared")]
    assert reduce(applied(current, first), outcome(), shared=("team/other",)).events == []


def test_the_last_run_stays_until_the_next_one_replaces_it() -> None:
    current = status("Current", retention={"lastRunAt": "2026-02-01T00:00:00Z", "deletedIndices": 4,
                                           "snapshot": "snap-1", "policy": "old", "dryRun": False})
    change = reduce(current, outcome(PolicySelection(SelectionOutcome.POLICY_TIE, tied=("a", "b"))))
    retention = change.patch["retention"]
    assert (retention["lastRunAt"], retention["deletedIndices"], retention["snapshot"]) == (
        "2026-02-01T00:00:00Z", 4, "snap-1")
    assert retention["dryRun"] is None  # a field the new plan lacks is removed


def test_an_unreadable_elasticsearch_is_written_once() -> None:
    first = unreadable([], {}, "ConnectionError", now=NOW, generation=3)
    (cond,) = first.patch["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ClusterIdentified", "False", "ElasticsearchUnavailable")
    read = [Condition.model_validate(c) for c in first.patch["conditions"]]
    again = unreadable(read, {"conditions": first.patch["conditions"]}, "ConnectionError",
                       now=NOW + dt.timedelta(seconds=20), generation=3)
    assert again.patch == {}


def test_mark_deleting_leaves_current_and_other_versions_alone() -> None:
    records = [{"dbVersion": "080", "tenant": "fa73a", "state": "Superseded"},
               {"dbVersion": "08x", "tenant": "01506", "state": "Current"},
               {"dbVersion": "0820", "tenant": "ffe49", "state": "Abandoned", "deletedNames": ["x"]}]
    marked = mark_deleting(records, {OLD: ["i1"], MID: ["i2"], VersionId("0820", "ffe49"): ["y"]})
    assert [(r["state"], r.get("deletedNames")) for r in marked] == [
        ("Deleting", ["i1"]), ("Current", None), ("Deleting", ["x", "y"])]
    assert records[0]["state"] == "Superseded"  # the input is not changed


def test_a_fleet_sharing_one_version_is_named_up_to_five_and_counted() -> None:
    fleet = tuple(f"fleet/t{i:03d}" for i in range(200))
    message = condition(reduce(status("Current"), outcome(), shared=fleet), "SharedVersionData")["message"]
    assert message.startswith("fleet/t000, fleet/t001, fleet/t002, fleet/t003, fleet/t004 and 195 more on the same")
    assert "fleet/t005" not in message
    few = condition(reduce(status("Current"), outcome(), shared=fleet[:5]), "SharedVersionData")["message"]
    assert few.startswith("fleet/t000, fleet/t001, fleet/t002, fleet/t003, fleet/t004 on the same")
