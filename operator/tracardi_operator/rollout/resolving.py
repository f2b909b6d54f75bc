"""Resolving (pure): from the running version and spec.version, the first step of the change, recorded
before anything acts; or a refusal (SpecAccepted=False) that changes nothing. The admission checks a
planned step passes first live here: the rollback target's indices still exist, the new indices fit
under the shard limit, the migration target holds no indices kept from before a rollback."""

from __future__ import annotations

from typing import Any

from tracardi_operator import conditions, versions
from tracardi_operator.models import (
    TracardiInstallation,
    TracardiInstallationSpec,
    TracardiInstallationStatus,
    UpgradeStatus,
)
from tracardi_operator.observe import Observed
from tracardi_operator.reasons import Reason
from tracardi_operator.retention import headroom
from tracardi_operator.rollout.draft import DEGRADED, PROGRESSING, SPEC_ACCEPTED, Draft, current_record
from tracardi_operator.rollout.workloads import converge_primary


def _rollback_targets(status: TracardiInstallationStatus) -> set[str]:
    """Database versions whose indices are all still there: Superseded, and not in a published
    deletion plan (that plan may be carried out already, or be half done when the operator stopped)."""
    plan = status.retention
    doomed = set()
    if plan is not None and plan.dry_run is not True:
        doomed = {i.db_version for i in plan.items if i.kind == "Version" and i.action == "Delete"}
    return {r.db_version for r in status.versions if r.state == "Superseded" and r.db_version not in doomed}


def _why_no_rollback(status: TracardiInstallationStatus, version: str, reason: str) -> str:
    """What a person needs to know when a rollback is refused: which of the version's names are gone."""
    if reason != versions.ROLLBACK_TARGET_DELETED:
        return ""
    db = versions.try_parse(version).version
    db_version = db.db_version if db else None
    record = next((r for r in reversed(status.versions) if r.db_version == db_version), None)
    if record is None or record.state == "Superseded":
        return ""
    if record.state == "Abandoned":
        return f"; {record.db_version}.{record.tenant} never served production (its upgrade was abandoned)"
    names = record.deleted_names or []
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if record.state == "Deleting":
        return (f"; retention began deleting {record.db_version}.{record.tenant}: {len(names)} names are gone"
                + (f" ({shown})" if names else ""))
    return f"; {record.db_version}.{record.tenant} was deleted" + (f" ({shown})" if names else "")


def resolve(s: Draft, observed: Observed) -> None:
    spec, status = s.inst.spec, s.status
    path = _planned(spec, status)
    if not path.ok:
        refuse(s, path.reason, path.message + _why_no_rollback(status, spec.version, path.reason))
        return
    s.cond(SPEC_ACCEPTED, True, path.reason, path.message)
    if not path.steps:
        s.cond(PROGRESSING, False, Reason.UP_TO_DATE, f"{spec.version} is running")
        s.cond(DEGRADED, False, Reason.AS_EXPECTED, "nothing failed")
        converge_primary(s, spec.version)
        return
    first, rest = path.steps[0], path.steps[1:]
    if not _room_for(s, first) or not _target_is_fresh(s, first):
        return
    current = current_record(status)
    status.upgrade = UpgradeStatus(
        kind=first.kind,
        from_version=str(first.from_version) if first.from_version else None,
        to_version=str(first.to_version),
        from_db_version=current.db_version if current else None,
        to_db_version=first.to_db,
        from_tenant=current.tenant if current else None,
        remaining=[str(step.to_version) for step in rest],
        step=_first_step(first.kind),
        started_at=s.ctx.now,
        message=str(first),
    )
    # A retry annotation already there (copied from elsewhere) is not a person asking to retry this one.
    status.handled_retry = s.ctx.retry
    s.cond(PROGRESSING, True, _first_step(first.kind), f"{path.message}; now: {first}")
    s.cond(DEGRADED, False, Reason.AS_EXPECTED, "nothing failed")
    s.event("Normal", Reason.UPGRADE_STARTED, f"{first}" + (f" (then {', '.join(map(str, rest))})" if rest else ""))
    if status.upgrade.step != "Rolling":
        s.wait(0.1)  # recorded; act on the next pass
    # An image roll is acted on in this pass (see `entry.decide`): its next pass is the step's own (its
    # Deployments' events, or its wait). A pass at once would find nothing rolled yet, and in a fleet
    # bump it would go ahead of other installations' first passes.


def needs_shard_room(inst: TracardiInstallation) -> bool:
    """Whether the change spec.version asks for starts with new indices (Install or Migrate): only then
    does `_room_for` need the cluster's shard room, read before the pass decides (an image roll makes no
    index, so a bump is acted on without asking Elasticsearch anything)."""
    path = _planned(inst.spec, inst.status)
    return path.ok and bool(path.steps) and path.steps[0].kind in ("Install", "Migrate")


def _planned(spec: TracardiInstallationSpec, status: TracardiInstallationStatus) -> versions.UpgradePath:
    """The way from the running version to spec.version, as `resolve` and `needs_shard_room` see it."""
    return versions.plan_upgrade(status.current_version, spec.version,
                                 allow_prerelease=spec.upgrade.allow_prerelease,
                                 rollback_targets=_rollback_targets(status))


def refuse(s: Draft, reason: str, message: str) -> bool:
    """Nothing changes: SpecAccepted=False with the reason, one Warning Event per new reason, and the
    running version kept as it should be. Returns False, for the callers' `return`."""
    already = conditions.find(s.status.conditions, SPEC_ACCEPTED)
    if already is None or already.status != "False" or already.reason != reason:
        s.event("Warning", reason, message)
    s.cond(SPEC_ACCEPTED, False, reason, message)
    s.cond(PROGRESSING, False, reason, f"nothing changes: {message}")
    if s.status.current_version:
        converge_primary(s, s.status.current_version)
    return False


def _room_for(s: Draft, step: versions.Step) -> bool:
    """Refuse, before it starts, a version change whose new indices would not fit under the shard limit."""
    if step.kind not in ("Install", "Migrate") or s.ctx.shards_available is None:
        return True
    es = s.inst.spec.elasticsearch
    needed = headroom.install_shards(step.to_db, shards_per_index=es.index_shards, replicas=es.index_replicas)
    if headroom.fits(needed, s.ctx.shards_available):
        return True
    reason = Reason.INDEX_HEADROOM_INSUFFICIENT
    message = (f"{step} needs about {needed} new shards but the Elasticsearch cluster has room for "
               f"{s.ctx.shards_available}: let a retention policy delete superseded versions, or raise "
               f"cluster.max_shards_per_node; nothing changes until then")
    return refuse(s, reason, message)


def _target_is_fresh(s: Draft, step: versions.Step) -> bool:
    """Refuse to migrate into a database version whose indices were kept from before a rollback:
    Tracardi's migration overwrites by id, so the data written there and the data written here since
    the rollback would be mixed. Once retention (or a person) has deleted them, the upgrade may go."""
    if step.kind != "Migrate":
        return True
    stale = next((r for r in s.status.versions
                  if r.db_version == step.to_db and r.state in ("Superseded", "Deleting", "Abandoned")), None)
    if stale is None:
        return True
    reason = Reason.STALE_TARGET_INDICES
    message = (f"{step.to_version}'s indices ({stale.db_version}.{stale.tenant}) are still there from before the "
               f"rollback to {s.status.current_version}; migrating into them again would mix old and new data. "
               f"Let a retention policy delete them (keepSupersededVersions 0), then bump again")
    return refuse(s, reason, message)


def _first_step(kind: str) -> Any:
    return {"Install": "StartingCandidate", "Migrate": "StartingCandidate"}.get(kind, "Rolling")
