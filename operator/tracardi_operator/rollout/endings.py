"""How an upgrade ends (pure): completed (or on to its next step), abandoned before the target served,
rolled back while switching; and the Failed step, which keeps the old version serving until a person
asks for a retry (the tracardi.com/retry annotation)."""

from __future__ import annotations

from tracardi_operator import builders
from tracardi_operator.models import JobRecord, UpgradeStatus, VersionRecord, VersionState
from tracardi_operator.observe import Observed
from tracardi_operator.reasons import Reason
from tracardi_operator.rollout.draft import DEGRADED, PROGRESSING, Draft
from tracardi_operator.rollout.jobs import attempt_of, free_attempt, job_name
from tracardi_operator.rollout.workloads import (
    candidate_manifests,
    converge_primary,
    delete_candidates,
    primary_manifests,
)


def complete(s: Draft, up: UpgradeStatus) -> None:
    up.step = "Completed"
    up.message = f"{up.to_version} is running"
    if up.remaining:
        s.cond(PROGRESSING, True, Reason.NEXT_STEP, f"{up.to_version} done; going on to {up.remaining[0]}")
        s.wait(0.1)
    else:
        s.cond(PROGRESSING, False, Reason.UP_TO_DATE, f"{up.to_version} is running")
        s.event("Normal", Reason.UPGRADE_COMPLETED, f"{up.to_version} is running")
    s.cond(DEGRADED, False, Reason.AS_EXPECTED, "nothing failed")


def abandon(s: Draft, up: UpgradeStatus, current: str) -> None:
    """The person gave up on the target before it served: remove the candidates, the old version
    serves as before. A target already installed is recorded Abandoned: it never served, so it is no
    rollback target and takes no keepSupersededVersions slot; its indices (half-copied, perhaps) are
    never migrated into again (see resolving._target_is_fresh) and retention reclaims them as garbage."""
    _go_back(s, up, current, VersionRecord(
        version=up.to_version, db_version=up.to_db_version or "", tenant=up.to_tenant or "",
        state=VersionState.ABANDONED,
        installed_at=s.ctx.now, superseded_at=s.ctx.now,
    ))
    up.message = f"abandoned: spec.version is back to {current}"
    s.cond(DEGRADED, False, Reason.UPGRADE_ABANDONED, up.message)
    s.cond(PROGRESSING, False, Reason.UP_TO_DATE, f"{current} is running")
    s.event("Normal", Reason.UPGRADE_ABANDONED, up.message)


def roll_back_switch(s: Draft, up: UpgradeStatus, current: str) -> None:
    """spec.version set back while switching: the target may have served production, so it is a
    rollback. The target is recorded Superseded (with supersededAt: a rollback target, aged and kept
    by the policy like any other) and the old version serves again."""
    _go_back(s, up, current, VersionRecord(
        version=up.to_version, db_version=up.to_db_version or "", tenant=up.to_tenant or "",
        state=VersionState.SUPERSEDED,
        installed_at=s.ctx.now, superseded_at=s.ctx.now, migrated_from=up.from_version or None,
        migration_verified=verified(up),
    ))
    up.message = f"rolled back to {current} while switching to {up.to_version}"
    message = (f"rolled back to {current} while {up.to_version} was being switched in: data written to "
               f"{up.to_version} since it served is not carried back")
    s.cond(DEGRADED, False, Reason.ROLLED_BACK, up.message)
    s.cond(PROGRESSING, False, Reason.UP_TO_DATE, f"{current} is running")
    s.event("Warning", Reason.ROLLED_BACK, message)


def target_applied(s: Draft, observed: Observed, version: str) -> bool:
    """Whether a serving Deployment was already given the target's pod template (its pods may have
    served with it)."""
    names = [builders.workload_name(s.inst.name, c) for c in builders.SERVING_COMPONENTS]
    return any((d := observed.deployments.get(n)) is not None and d.version == version for n in names)


def _go_back(s: Draft, up: UpgradeStatus, current: str, target: VersionRecord) -> None:
    """The upgrade ends without switching: candidates removed, `current` serves, and the target, if it
    was installed (its tenant is known), recorded as `target` says, once."""
    delete_candidates(s, up.to_db_version or "")
    converge_primary(s, current)
    if up.to_tenant and up.to_db_version and not any(
            r.db_version == up.to_db_version and r.tenant == up.to_tenant for r in s.status.versions):
        s.status.versions.insert(len(s.status.versions) - 1, target)
    up.step = "Completed"


def verified(up: UpgradeStatus) -> bool:
    """The migration Job's verification, as recorded: every count it reported was complete."""
    return bool(up.verified) and all(v.ok for v in up.verified)


def reverted(s: Draft, up: UpgradeStatus) -> bool:
    """spec.version was set back to the running version while a migration was under way."""
    return up.kind == "Migrate" and s.status.current_version is not None \
        and s.inst.spec.version == s.status.current_version


def failed_step(s: Draft, observed: Observed) -> None:
    up = s.status.upgrade
    assert up is not None
    spec_version = s.inst.spec.version
    current = s.status.current_version
    failed = next((j for j in reversed(up.jobs) if j.outcome == "Failed"), None)
    if current is not None and spec_version == current and up.kind == "Migrate":
        abandon(s, up, current)
        return
    # What the retry will run through stays as the spec says: a person fixes the cause (spec.env, ...)
    # while failed, and the fix reaches the side-by-side API and worker before the retry starts a Job.
    if up.kind == "Migrate":
        candidate_manifests(s, up.to_version, up.to_db_version or "")
    elif up.kind == "Install" and current is None:
        primary_manifests(s, up.to_version, components=("api", "worker"))
    retry = s.ctx.retry
    if retry and retry != s.status.handled_retry and failed is not None:
        s.status.handled_retry = retry
        attempt = free_attempt(s, observed, up, failed.purpose, attempt_of(s, up, failed.purpose, failed.name) + 1)
        up.jobs.append(JobRecord(name=job_name(s, up, failed.purpose, attempt), purpose=failed.purpose,
                                 outcome="Running", started_at=s.ctx.now))
        up.step = "Installing" if failed.purpose == "Install" else "Migrating"
        s.cond(DEGRADED, False, Reason.RETRYING,
               f"retrying {failed.purpose.lower()} as asked by tracardi.com/retry={retry}")
        s.cond(PROGRESSING, True, Reason.RETRYING, f"attempt {attempt} of the {failed.purpose.lower()} Job")
        s.event("Normal", Reason.RETRYING,
                f"attempt {attempt} of the {failed.purpose.lower()} Job (tracardi.com/retry)")
        s.wait(0.1)
        return
    # Keep the old version serving while failed (Offline: production back up).
    if current is not None:
        converge_primary(s, current)
    if failed is not None:
        s.cond(DEGRADED, True, failed.reason or Reason.JOB_FAILED, up.message or "the upgrade failed")
        s.cond(PROGRESSING, False, failed.reason or Reason.JOB_FAILED, up.message or "the upgrade failed")
