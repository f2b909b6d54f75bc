"""Carrying a recorded step out (pure), one function per kind of change: Install (the first
version), Rolling and Rollback (every component to a tag), Migrate (candidate beside the old version,
install, migration, switch)."""

from __future__ import annotations

from tracardi_operator import builders
from tracardi_operator.jobs.repair import quarter_suffix
from tracardi_operator.models import UpgradeStatus, VersionRecord, VersionState
from tracardi_operator.observe import Observed
from tracardi_operator.reasons import Reason
from tracardi_operator.rollout.draft import PROGRESSING, Draft, current_record, is_offline
from tracardi_operator.rollout.endings import abandon, complete, reverted, roll_back_switch, target_applied, verified
from tracardi_operator.rollout.jobs import fail, installed, migration_job, record_verified
from tracardi_operator.rollout.workloads import (
    all_rolled_out,
    candidate_manifests,
    delete_candidates,
    primary_manifests,
)


def continue_upgrade(s: Draft, observed: Observed) -> None:
    up = s.status.upgrade
    assert up is not None
    handler = {
        "Install": install_step,
        "Migrate": migrate_step,
        "Rolling": rolling_step,
        "Rollback": rolling_step,
    }[up.kind]
    handler(s, observed, up)


# -- Install (first version) -------------------------------------------------------------------------


def install_step(s: Draft, observed: Observed, up: UpgradeStatus) -> None:
    version = up.to_version
    api = builders.workload_name(s.inst.name, "api")
    if up.step == "StartingCandidate":
        primary_manifests(s, version, components=("api", "worker"))
        if not observed.serving(api) or (not observed.pod_ips.get(api) and s.ctx.api_addressing == "pod"):
            s.cond(PROGRESSING, True, Reason.STARTING_API, f"waiting for the API of {version} to be ready")
            s.wait()
            return
        up.step = "Installing"
        s.wait(0.1)
        return
    if up.step == "Installing":
        primary_manifests(s, version, components=("api", "worker"))
        s.cond(PROGRESSING, True, Reason.INSTALLING, f"installing {version}")
        if not installed(s, observed, up, api, "primary"):
            return
        s.status.versions.append(VersionRecord(
            version=version, db_version=up.to_db_version or "", tenant=up.to_tenant or "",
            state=VersionState.CURRENT, installed_at=s.ctx.now,
        ))
        s.status.current_version = version
        up.step = "Switching"
        s.event("Normal", Reason.INSTALLED, f"{version} installed (db {up.to_db_version}, tenant {up.to_tenant})")
        s.wait(0.1)
        return
    # Switching: start production API and GUI now that the version is installed.
    primary_manifests(s, version)
    if not all_rolled_out(s, observed, version):
        s.cond(PROGRESSING, True, Reason.STARTING_COMPONENTS, f"waiting for every component of {version}")
        s.wait()
        return
    complete(s, up)


# -- Rolling and Rollback ----------------------------------------------------------------------------


def rolling_step(s: Draft, observed: Observed, up: UpgradeStatus) -> None:
    version = up.to_version
    primary_manifests(s, version)
    s.cond(PROGRESSING, True, Reason.ROLLING if up.kind == "Rolling" else Reason.ROLLING_BACK,
           f"rolling every component to {version}")
    if not all_rolled_out(s, observed, version):
        s.wait()
        return
    old = current_record(s.status)
    if up.kind == "Rollback":
        target = next((r for r in reversed(s.status.versions)
                       if r.db_version == up.to_db_version and r.state == "Superseded"), None)
        if old is not None:
            old.state, old.superseded_at = VersionState.SUPERSEDED, s.ctx.now
        if target is not None:
            target.state, target.superseded_at, target.version = VersionState.CURRENT, None, version
        s.event("Warning", Reason.ROLLED_BACK,
                f"rolled back to {version}; data written to {up.from_version} since the upgrade is not carried back")
    else:
        if old is not None:
            old.state, old.superseded_at = VersionState.SUPERSEDED, s.ctx.now
        s.status.versions.append(VersionRecord(
            version=version, db_version=up.to_db_version or (old.db_version if old else ""),
            tenant=old.tenant if old else "", state=VersionState.CURRENT, installed_at=s.ctx.now,
            migrated_from=None,
        ))
    s.status.current_version = version
    complete(s, up)


# -- Migrate -----------------------------------------------------------------------------------------


def migrate_step(s: Draft, observed: Observed, up: UpgradeStatus) -> None:
    version, db = up.to_version, up.to_db_version or ""
    old = up.from_version or ""
    candidate_api = builders.workload_name(s.inst.name, "api", "candidate", db)
    if up.step in ("StartingCandidate", "Installing", "Migrating"):
        candidate_manifests(s, version, db)
        production_replicas = 0 if (is_offline(s) and up.step == "Migrating") else None
        primary_manifests(s, old, production_replicas=production_replicas)
    if _reverted_migration(s, observed, up):
        return
    if up.step == "StartingCandidate":
        _starting_candidate(s, observed, up, candidate_api)
    elif up.step == "Installing":
        _installing(s, observed, up, candidate_api)
    elif up.step == "Migrating":
        _migrating(s, observed, up, candidate_api)
    else:
        _switching(s, observed, up)


def _reverted_migration(s: Draft, observed: Observed, up: UpgradeStatus) -> bool:
    """spec.version set back during a migration: roll back or abandon while that loses nothing; True when
    it did."""
    if not reverted(s, up):
        return False
    old = up.from_version or ""
    if up.step == "Switching" and target_applied(s, observed, up.to_version):
        # The production API may already have served the target: going back is a rollback.
        roll_back_switch(s, up, old)
        return True
    if up.step == "Switching" or not any(j.purpose == "Migrate" for j in up.jobs):
        # Verified but the switch never applied (nothing served the target), or before the migration
        # Job exists: nothing is lost by stopping.
        abandon(s, up, old)
        return True
    return False


def _starting_candidate(s: Draft, observed: Observed, up: UpgradeStatus, candidate_api: str) -> None:
    s.cond(PROGRESSING, True, Reason.STARTING_CANDIDATE, f"starting {up.to_version} beside {up.from_version or ''}")
    if not observed.serving(candidate_api) or (s.ctx.api_addressing == "pod"
                                                and not observed.pod_ips.get(candidate_api)):
        s.wait()
        return
    up.step = "Installing"
    s.wait(0.1)


def _installing(s: Draft, observed: Observed, up: UpgradeStatus, candidate_api: str) -> None:
    version, old = up.to_version, up.from_version or ""
    s.cond(PROGRESSING, True, Reason.INSTALLING, f"installing {version} beside {old}")
    if not installed(s, observed, up, candidate_api, "candidate"):
        return
    if up.merged_suffix is None:
        up.merged_suffix = quarter_suffix(s.ctx.now)
    up.step = "Migrating"
    s.event("Normal", Reason.INSTALLED,
            f"{version} installed beside {old} (db {up.to_db_version or ''}, tenant {up.to_tenant})")
    s.wait(0.1)


def _migrating(s: Draft, observed: Observed, up: UpgradeStatus, candidate_api: str) -> None:
    db, old = up.to_db_version or "", up.from_version or ""
    strategy = ("Offline: event collection is paused while the data is copied" if is_offline(s) else
                "Online: events written to the old version during the copy are not carried over")
    s.cond(PROGRESSING, True, Reason.MIGRATING, f"migrating {up.from_db_version} → {db}; {strategy}")
    if is_offline(s) and not observed.settled(builders.workload_name(s.inst.name, "api-production"), old):
        s.wait()  # wait until the old production API is really down
        return
    record = migration_job(s, observed, up, candidate_api)
    if record is None:
        return
    if record.outcome == "Failed":
        fail(s, up, record)
        return
    job = observed.jobs.get(record.name)
    record_verified(up, job.result if job else None)
    up.step = "Switching"
    s.event("Normal", Reason.MIGRATED, f"{up.from_db_version} → {db} migrated and verified ({record.name})")
    s.wait(0.1)


def _switching(s: Draft, observed: Observed, up: UpgradeStatus) -> None:
    """The outcome is recorded; move every component to the new version."""
    version, db, old = up.to_version, up.to_db_version or "", up.from_version or ""
    primary_manifests(s, version)
    delete_candidates(s, db)
    s.cond(PROGRESSING, True, Reason.SWITCHING, f"switching every component to {version}")
    if not all_rolled_out(s, observed, version):
        s.wait()
        return
    previous = current_record(s.status)
    if previous is not None:
        previous.state, previous.superseded_at = VersionState.SUPERSEDED, s.ctx.now
    s.status.versions.append(VersionRecord(
        version=version, db_version=db, tenant=up.to_tenant or "", state=VersionState.CURRENT,
        installed_at=s.ctx.now, migrated_from=old or None, migration_verified=verified(up),
    ))
    s.status.current_version = version
    s.event("Normal", Reason.SWITCHED, f"{version} serves; {old} is superseded")
    complete(s, up)
