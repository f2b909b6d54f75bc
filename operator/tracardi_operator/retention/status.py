"""What a retention run changes in an installation's status (pure: plain data in, plain data out).

What lives here:
- `RunOutcome`: what one retention run found and did (its plan as status.retention, the headroom,
  the versions deleted or begun, the Events to post).
- `status_of_plan` and `retention_patch`: a plan as status.retention, and as a merge patch.
- `after_run`: the reducer from (status, the run's outcome, now, generation) to the status patch and
  the Events of the pass: versions marked Deleted or Deleting, the retention, headroom and cluster
  conditions set, and only what changed (beyond the times every pass moves) patched.
- `unreadable`: the same when Elasticsearch did not answer (ClusterIdentified=False, written once).
- `mark_deleting`: the versions about to lose their first names recorded as Deleting, before they go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator import conditions
from tracardi_operator.indices import VersionId
from tracardi_operator.models import (
    Condition,
    HeadroomStatus,
    RetentionItem,
    RetentionStatus,
    TracardiInstallationStatus,
    VersionState,
)
from tracardi_operator.reasons import Reason
from tracardi_operator.retention import headroom as headroom_
from tracardi_operator.retention.decisions import Action, RetentionPlan
from tracardi_operator.retention.selection import PolicySelection, SelectionOutcome

MAX_ITEMS = 200
"""Items listed in status.retention (the counts always cover everything)."""
RECLAIMABLE = ("Superseded", "Abandoned", "Deleting")
"""Version states whose indices retention may delete: the records a run marks Deleting or Deleted."""
_LAST_RUN_KEYS = ("lastRunAt", "deletedIndices", "snapshot")
_WRITTEN = ("retention", "headroom", "versions", "conditions", "elasticsearchCluster")
"""The fields of status a retention pass writes (the rest belongs to the rollout)."""

Event = tuple[str, str, str]
"""An Event to post: type (Normal or Warning), reason, message."""


@dataclass
class RunOutcome:
    """What one retention run of one installation found and did."""

    retention: RetentionStatus
    headroom: HeadroomStatus | None
    deleted_pairs: list[VersionId] = field(default_factory=list)
    deleted_indices: int = 0
    deleted_templates: int = 0
    snapshot: str | None = None
    events: list[Event] = field(default_factory=list)
    selection: PolicySelection | None = None
    deleting: dict[VersionId, list[str]] = field(default_factory=dict)
    planned_indices: int = 0
    """Indices the plan deletes (or would, in a dry run): every one, where status lists at most a page."""


@dataclass(frozen=True)
class StatusChange:
    """A merge patch of status (empty: nothing new to say) and the Events to post after it."""

    patch: dict[str, Any]
    events: list[Event]


def status_of_plan(plan: RetentionPlan, selection: PolicySelection, now: dt.datetime) -> RetentionStatus:
    items: list[RetentionItem] = []
    for d in plan.decisions:
        items.append(RetentionItem(
            name=f"{d.pair.db}.{d.pair.tenant}", kind="Version",
            action="Delete" if d.action is Action.DELETE else "Keep", reason=str(d.reason),
            eligible_at=d.eligible_at, db_version=d.pair.db, tenant=d.pair.tenant,
        ))
    for name in plan.indices[: MAX_ITEMS]:
        items.append(RetentionItem(name=name, kind="Index", action="Delete", reason="Eligible"))
    for name in plan.templates[: MAX_ITEMS]:
        items.append(RetentionItem(name=name, kind="Template", action="Delete", reason="Eligible"))
    count = len(plan.indices) + len(plan.templates)
    verb = "would delete" if plan.dry_run else "deletes"
    message = (f"{selection.message}; {verb} {len(plan.indices)} indices and {len(plan.templates)} templates "
               f"({plan.shards_freed} shards)") if count else f"{selection.message}; nothing to delete"
    if plan.safety_violations:
        message += f"; the safety filter refused {len(plan.safety_violations)} names (a bug: please report)"
    return RetentionStatus(
        policy=plan.policy, conflicting_policies=list(selection.tied), dry_run=plan.dry_run if plan.policy else None,
        computed_at=now, items=items[: MAX_ITEMS * 2 + len(plan.decisions)], message=message,
    )


def retention_patch(old: Mapping[str, Any], new: RetentionStatus) -> dict[str, Any]:
    """status.retention as a merge patch over `old`: a field the new plan no longer has (policy and
    dryRun during a tie, ...) is removed rather than left over from an older plan; the record of the
    last deletion run stays until the next run replaces it."""
    patch: dict[str, Any] = new.model_dump(by_alias=True, mode="json", exclude_none=True)
    for key in old:
        if key not in patch and key not in _LAST_RUN_KEYS:
            patch[key] = None
    return patch


def mark_deleting(
    records: Iterable[Mapping[str, Any]], names: Mapping[VersionId, Sequence[str]]
) -> list[dict[str, Any]]:
    """status.versions (as written) with every reclaimable version of `names` Deleting and the names about
    to go added to its deletedNames: recorded before they go, so it is never taken for a whole version again."""
    out = []
    for written in records:
        record = dict(written)
        pair = VersionId(str(record.get("dbVersion")), str(record.get("tenant")))
        if pair in names and record.get("state") in ("Superseded", "Abandoned", "Deleting"):
            record["state"] = "Deleting"
            record["deletedNames"] = sorted(set(record.get("deletedNames") or []) | set(names[pair]))
        out.append(record)
    return out


def after_run(
    status: TracardiInstallationStatus,
    written: Mapping[str, Any],
    outcome: RunOutcome,
    *,
    identity: str | None,
    shared: Sequence[str],
    now: dt.datetime,
    generation: int | None,
) -> StatusChange:
    """The status patch and Events of a retention run.

    `status` is the installation's status as this pass decided it (the rollout's), `written` the status
    the pass read from the apiserver, `identity` the cluster_uuid (None: unknown) and `shared` the other
    installations (namespace/name) that use one of this one's versions on the same cluster.
    """
    new = status.model_copy(deep=True)
    retention = outcome.retention.model_copy(deep=True)
    previous = status.retention
    if previous is not None and retention.last_run_at is None:
        # The record of the last deletion stays until the next one replaces it.
        retention.last_run_at = previous.last_run_at
        retention.deleted_indices = previous.deleted_indices
        retention.snapshot = previous.snapshot
    new.retention = retention
    new.headroom = outcome.headroom
    new.elasticsearch_cluster = identity or new.elasticsearch_cluster
    for record in new.versions:
        pair = VersionId(record.db_version, record.tenant)
        if pair in outcome.deleted_pairs and record.state in RECLAIMABLE:
            record.state, record.deleted_at = VersionState.DELETED, now
        elif pair in outcome.deleting and record.state in RECLAIMABLE:
            record.state = VersionState.DELETING
            record.deleted_names = sorted(set(record.deleted_names or []) | set(outcome.deleting[pair]))
    new.conditions = _identity_conditions(new.conditions, identity, sorted(shared), now, generation)
    new.conditions = _deletion_conditions(new, outcome, now, generation)
    new.conditions = _policy_condition(new.conditions, outcome.selection, now, generation)
    new.conditions = _headroom_condition(new.conditions, outcome.headroom, now, generation)
    dumped = new.model_dump(by_alias=True, mode="json", exclude_none=True)
    changed = {k: v for k, v in dumped.items() if written.get(k) != v and k in _WRITTEN}
    # computedAt and checkedAt move on every pass; publish only what means something new.
    if changed and set(changed) <= {"retention", "headroom"} and _same_but_times(written, dumped):
        changed = {}
    if "retention" in changed:
        changed["retention"] = retention_patch(written.get("retention") or {}, retention)
    return StatusChange(changed, outcome.events + _new_warnings(status.conditions, new.conditions))


def unreadable(
    current: Sequence[Condition], written: Mapping[str, Any], cause: str, *, now: dt.datetime, generation: int | None
) -> StatusChange:
    """Retention could not read Elasticsearch (`cause`: the error's type): ClusterIdentified=False says so
    (nothing is deleted while it is), patched only when it says something new."""
    message = (f"Elasticsearch did not answer ({cause}): which indices exist and which "
               "cluster it is are unknown, so retention deletes nothing until it answers")
    updated = conditions.set_condition(
        current, conditions.CLUSTER_IDENTIFIED, False, Reason.ELASTICSEARCH_UNAVAILABLE, message,
        now=now, observed_generation=generation,
    )
    new = [c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in updated]
    return StatusChange({"conditions": new} if new != written.get("conditions") else {}, [])


SHARED_NAMES = 5
"""Installations a SharedVersionData message names; the rest are counted (a fleet on one cluster would
otherwise write every name into every status, and rewrite each when any comes or goes)."""


def _some(names: list[str]) -> str:
    if len(names) <= SHARED_NAMES:
        return ", ".join(names)
    return f"{', '.join(names[:SHARED_NAMES])} and {len(names) - SHARED_NAMES} more"


def _identity_conditions(current: list[Condition], identity: str | None, shared: list[str], now: dt.datetime,
                         generation: int | None) -> list[Condition]:
    known = identity is not None
    updated = conditions.set_condition(
        current, conditions.CLUSTER_IDENTIFIED, known,
        Reason.CLUSTER_UUID if known else Reason.CLUSTER_IDENTITY_UNKNOWN,
        f"Elasticsearch cluster {identity}" if known else
        "Elasticsearch did not tell its cluster_uuid (GET /): which installations share it is unknown, so "
        "retention deletes nothing", now=now, observed_generation=generation,
    )
    return conditions.set_condition(
        updated, conditions.SHARED_VERSION_DATA, bool(shared), Reason.PAIR_SHARED if shared else Reason.NOT_SHARED,
        (f"{_some(shared)} on the same Elasticsearch cluster run the same Tracardi database version and "
         f"tenant: they read and write the same data; its indices stay while either uses them")
        if shared else "no other installation uses this installation's Tracardi data",
        now=now, observed_generation=generation,
    )


def _deletion_conditions(status: TracardiInstallationStatus, outcome: RunOutcome, now: dt.datetime,
                         generation: int | None) -> list[Condition]:
    """DeletionIncomplete while a version is half deleted and no plan goes on deleting it."""
    planned = {(i.db_version, i.tenant) for i in outcome.retention.items
               if i.kind == "Version" and i.action == "Delete" and not outcome.retention.dry_run}
    stuck = [r for r in status.versions if r.state == "Deleting" and (r.db_version, r.tenant) not in planned]
    message = "; ".join(
        f"{r.version} ({r.db_version}.{r.tenant}): {len(r.deleted_names or [])} names deleted before the plan "
        f"was withdrawn" for r in stuck)
    return conditions.set_condition(
        status.conditions, conditions.DELETION_INCOMPLETE, bool(stuck),
        Reason.PLAN_WITHDRAWN if stuck else Reason.NOTHING_HALF_DELETED,
        (message + ". It can no longer be rolled back to; a person must decide: let a policy delete the rest, "
         "or restore it from a snapshot") if stuck else "no version is half deleted",
        now=now, observed_generation=generation,
    )


_SELECTION_REASONS = {
    SelectionOutcome.GOVERNED: Reason.GOVERNED,
    SelectionOutcome.NO_POLICY: Reason.NO_POLICY,
    SelectionOutcome.POLICY_TIE: Reason.POLICY_TIE,
}


def _policy_condition(current: list[Condition], selection: PolicySelection | None, now: dt.datetime,
                      generation: int | None) -> list[Condition]:
    """RetentionPolicyResolved: True when one policy or none selects the installation, False on a tie."""
    if selection is None:
        return current
    governed = selection.outcome is SelectionOutcome.GOVERNED
    return conditions.set_condition(
        current, conditions.RETENTION_POLICY_RESOLVED,
        governed or selection.outcome is SelectionOutcome.NO_POLICY,
        _SELECTION_REASONS[selection.outcome], selection.message + ("" if governed else ": nothing is deleted"),
        now=now, observed_generation=generation,
    )


def _headroom_condition(current: list[Condition], headroom: HeadroomStatus | None, now: dt.datetime,
                        generation: int | None) -> list[Condition]:
    """IndexHeadroomLow: True at or above headroom.LOW_PERCENT of the cluster's shard limit."""
    if headroom is None:
        return current
    low = headroom_.is_low(headroom)
    return conditions.set_condition(
        current, conditions.INDEX_HEADROOM_LOW, low, Reason.SHARDS_NEAR_LIMIT if low else Reason.ENOUGH_SHARDS,
        f"{headroom.shards_used} of {headroom.shard_limit} shards in use ({headroom.used_percent}%); "
        f"retention could free {headroom.reclaimable_shards or 0}",
        now=now, observed_generation=generation,
    )


def _new_warnings(before: Sequence[Condition], after: Sequence[Condition]) -> list[Event]:
    """A Warning Event when SharedVersionData or DeletionIncomplete becomes true."""
    events: list[Event] = []
    for type_ in (conditions.SHARED_VERSION_DATA, conditions.DELETION_INCOMPLETE):
        new, old = conditions.find(after, type_), conditions.find(before, type_)
        if new is not None and new.status == "True" and (old is None or old.status != "True"
                                                         or old.message != new.message):
            events.append(("Warning", new.reason, new.message))
    return events


def _same_but_times(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    def strip(status: Mapping[str, Any]) -> tuple[Any, Any]:
        retention = {k: v for k, v in (status.get("retention") or {}).items() if k != "computedAt"}
        headroom = {k: v for k, v in (status.get("headroom") or {}).items() if k != "checkedAt"}
        return retention, headroom

    return strip(old) == strip(new)
