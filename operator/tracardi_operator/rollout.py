"""The rollout state machine: from an installation (spec + status) and what is observed of its
children, the next thing to do. Pure: `decide()` returns a `Decision` (manifests to apply, Jobs to
create, objects to delete, the new status, Events) and the handler carries it out.

How a version change proceeds (every step first recorded in status, then acted on, so that a crash
at any point resumes where it stopped and never runs a Job twice):

1. Resolving: the path from the running version to spec.version is planned (versions.plan_upgrade);
   a refused target changes nothing and sets SpecAccepted=False. The first step is recorded.
2. Install (nothing runs yet): the GUI/staging API and worker start; the install Job runs against
   the API; only then do the production API and the GUI start (traffic before install breaks it).
3. Rolling (same db version) and Rollback (back to a kept version): every component rolls to the tag.
4. Migrate (next db version): StartingCandidate (the new API and worker beside the old ones) →
   Installing (install Job) → Migrating (Offline: the old production API scaled to zero; the
   migration Job, exactly once per pair, verifies every copy) → Switching (every component to the new
   tag, candidates removed) → the old version recorded Superseded. Skipped db versions are crossed
   one migration at a time (0.8.0 → 0.8.1 → 0.8.2.1).
5. A failed Job stops the change before the switch (Degraded; the old version keeps serving). A person
   retries by setting the annotation tracardi.com/retry to a new value, which starts the Job again
   under a new deterministic name (`-r2`, …); never after the switch. While failed, the side-by-side
   API and worker keep following the spec (a fix in spec.env reaches them), and a Job is created only
   once the pods it goes through run the current spec (no pod of an older template still running).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator import builders, conditions, jobresults, retention, versions
from tracardi_operator.models import (
    JobRecord,
    TracardiInstallation,
    TracardiInstallationStatus,
    UpgradeStatus,
    VerifiedCount,
    VersionRecord,
)
from tracardi_operator.observe import Observed

READY, PROGRESSING, DEGRADED, PAUSED, SPEC_ACCEPTED = (
    conditions.READY, conditions.PROGRESSING, conditions.DEGRADED, conditions.PAUSED, conditions.SPEC_ACCEPTED,
)
WAIT = 15.0
"""Seconds before looking again while waiting on a rollout or a Job (events usually come first)."""


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    apply: list[dict[str, Any]] = field(default_factory=list)
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[tuple[str, str, str]] = field(default_factory=list)
    """(apiVersion, kind, name) in the installation's namespace."""
    status: TracardiInstallationStatus = field(default_factory=TracardiInstallationStatus)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


@dataclass(frozen=True)
class Context:
    now: dt.datetime
    builder: builders.BuilderSettings
    api_addressing: str = "pod"
    retry: str | None = None
    """The value of the tracardi.com/retry annotation."""
    shards_available: int | None = None
    """Room for new shards in the Elasticsearch cluster, when it was read (before a version change)."""


class _Step:
    """Accumulates one decision: the status being rewritten, and what to do."""

    def __init__(self, inst: TracardiInstallation, ctx: Context) -> None:
        self.inst = inst
        self.ctx = ctx
        self.status = inst.status.model_copy(deep=True)
        self.d = Decision()

    @property
    def generation(self) -> int | None:
        return self.inst.metadata.generation

    def cond(self, type_: str, value: bool, reason: str, message: str) -> None:
        self.status.conditions = conditions.set_condition(
            self.status.conditions, type_, value, reason, message,
            now=self.ctx.now, observed_generation=self.generation,
        )

    def event(self, type_: str, reason: str, message: str) -> None:
        self.d.events.append(Event(type_, reason, message))

    def wait(self, seconds: float = WAIT) -> None:
        self.d.requeue_after = seconds if self.d.requeue_after is None else min(self.d.requeue_after, seconds)

    def finish(self) -> Decision:
        self.status.observed_generation = self.generation
        self.status.phase = conditions.summarize_phase(self.status.conditions)
        self.d.status = self.status
        return self.d


# ---------------------------------------------------------------------------------------------------
# Entry point


def decide(inst: TracardiInstallation, observed: Observed, ctx: Context) -> Decision:
    s = _Step(inst, ctx)
    spec = inst.spec
    if spec.paused:
        s.cond(PAUSED, True, "PausedBySpec", "spec.paused is true: the operator changes nothing until it is false")
        _ready(s, observed)
        return s.finish()
    s.cond(PAUSED, False, "NotPaused", "the operator acts on this installation")
    s.status.target_version = spec.version

    up = s.status.upgrade
    if up is not None and up.step == "Failed":
        _failed(s, observed)
    elif up is not None and up.step != "Completed":
        _continue(s, observed)
    else:
        _resolve(s, observed)
    _stalled(s, observed)
    _refused(s, observed)
    _ready(s, observed)
    return s.finish()


REFUSED_HINT = ("the namespace's Pod Security level refuses them? Label it for a lower level, or set "
                "spec.security (a UID for `restricted`)")


def _refused(s: _Step, observed: Observed) -> None:
    """Pods the apiserver refuses to create (Pod Security admission, a quota) never come: say so at
    once, with the apiserver's words, rather than wait for a progress deadline. A failed Job's Degraded
    stays the more specific word; this clears once the pods are created."""
    refused = [(name, d.refused) for name, d in sorted(observed.deployments.items()) if d.refused]
    refused += [(name, j.refused) for name, j in sorted(observed.jobs.items()) if j.refused]
    degraded = conditions.find(s.status.conditions, DEGRADED)
    if degraded is not None and degraded.status == "True" and degraded.reason not in ("PodsRefused",
                                                                                      "RolloutStalled"):
        return
    if not refused:
        if degraded is not None and degraded.reason == "PodsRefused":
            s.cond(DEGRADED, False, "AsExpected", "the pods are created again")
        return
    message = "; ".join(f"{name}: {why}" for name, why in refused)[:2000] + f" ({REFUSED_HINT})"
    if degraded is None or degraded.reason != "PodsRefused" or degraded.message != message:
        s.event("Warning", "PodsRefused", message)
    s.cond(DEGRADED, True, "PodsRefused", message)


def _stalled(s: _Step, observed: Observed) -> None:
    """A Deployment that cannot roll out (image not pullable, crash loop) would be waited on forever:
    say so. A failed Job's Degraded stays the more specific word."""
    stalled = sorted(name for name, d in observed.deployments.items() if d.stalled)
    degraded = conditions.find(s.status.conditions, DEGRADED)
    if degraded is not None and degraded.status == "True" and degraded.reason != "RolloutStalled":
        return
    if not stalled:
        if degraded is not None and degraded.reason == "RolloutStalled":
            s.cond(DEGRADED, False, "AsExpected", "every Deployment makes progress again")
        return
    message = (f"{', '.join(stalled)} made no progress within its progress deadline (an image that cannot be "
               f"pulled? pods that crash?); see kubectl describe deployment and the pods' events")
    if degraded is None or degraded.reason != "RolloutStalled":
        s.event("Warning", "RolloutStalled", message)
    s.cond(DEGRADED, True, "RolloutStalled", message)


# ---------------------------------------------------------------------------------------------------
# Resolving


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


def _resolve(s: _Step, observed: Observed) -> None:
    spec, status = s.inst.spec, s.status
    path = versions.plan_upgrade(
        status.current_version, spec.version,
        allow_prerelease=spec.upgrade.allow_prerelease, rollback_targets=_rollback_targets(status),
    )
    if not path.ok:
        _refuse(s, path.reason, path.message + _why_no_rollback(status, spec.version, path.reason))
        return
    s.cond(SPEC_ACCEPTED, True, path.reason, path.message)
    if not path.steps:
        s.cond(PROGRESSING, False, "UpToDate", f"{spec.version} is running")
        s.cond(DEGRADED, False, "AsExpected", "nothing failed")
        _converge_primary(s, spec.version)
        return
    first, rest = path.steps[0], path.steps[1:]
    if not _room_for(s, first) or not _target_is_fresh(s, first):
        return
    current = _current_record(status)
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
    s.cond(DEGRADED, False, "AsExpected", "nothing failed")
    s.event("Normal", "UpgradeStarted", f"{first}" + (f" (then {', '.join(map(str, rest))})" if rest else ""))
    s.wait(0.1)  # recorded; act on the next pass


def _refuse(s: _Step, reason: str, message: str) -> bool:
    """Nothing changes: SpecAccepted=False with the reason, one Warning Event per new reason, and the
    running version kept as it should be. Returns False, for the callers' `return`."""
    already = conditions.find(s.status.conditions, SPEC_ACCEPTED)
    if already is None or already.status != "False" or already.reason != reason:
        s.event("Warning", reason, message)
    s.cond(SPEC_ACCEPTED, False, reason, message)
    s.cond(PROGRESSING, False, reason, f"nothing changes: {message}")
    if s.status.current_version:
        _converge_primary(s, s.status.current_version)
    return False


def _room_for(s: _Step, step: versions.Step) -> bool:
    """Refuse, before it starts, a version change whose new indices would not fit under the shard limit."""
    if step.kind not in ("Install", "Migrate") or s.ctx.shards_available is None:
        return True
    es = s.inst.spec.elasticsearch
    needed = retention.estimate_install_shards(
        step.to_db,
        shards_per_index=es.index_shards if es.index_shards is not None else retention.TRACARDI_DEFAULT_SHARDS,
        replicas=es.index_replicas if es.index_replicas is not None else retention.TRACARDI_DEFAULT_REPLICAS,
    )
    if needed is None or needed <= s.ctx.shards_available:
        return True
    reason = "IndexHeadroomInsufficient"
    message = (f"{step} needs about {needed} new shards but the Elasticsearch cluster has room for "
               f"{s.ctx.shards_available}: let a retention policy delete superseded versions, or raise "
               f"cluster.max_shards_per_node; nothing changes until then")
    return _refuse(s, reason, message)


def _target_is_fresh(s: _Step, step: versions.Step) -> bool:
    """Refuse to migrate into a database version whose indices were kept from before a rollback:
    Tracardi's migration overwrites by id, so the data written there and the data written here since
    the rollback would be mixed. Once retention (or a person) has deleted them, the upgrade may go."""
    if step.kind != "Migrate":
        return True
    stale = next((r for r in s.status.versions
                  if r.db_version == step.to_db and r.state in ("Superseded", "Deleting", "Abandoned")), None)
    if stale is None:
        return True
    reason = "StaleTargetIndices"
    message = (f"{step.to_version}'s indices ({stale.db_version}.{stale.tenant}) are still there from before the "
               f"rollback to {s.status.current_version}; migrating into them again would mix old and new data. "
               f"Let a retention policy delete them (keepSupersededVersions 0), then bump again")
    return _refuse(s, reason, message)


def _first_step(kind: str) -> Any:
    return {"Install": "StartingCandidate", "Migrate": "StartingCandidate"}.get(kind, "Rolling")


def _current_record(status: TracardiInstallationStatus) -> VersionRecord | None:
    return next((r for r in reversed(status.versions) if r.state == "Current"), None)


# ---------------------------------------------------------------------------------------------------
# Carrying a step out


def _continue(s: _Step, observed: Observed) -> None:
    up = s.status.upgrade
    assert up is not None
    handler = {
        "Install": _install_step,
        "Migrate": _migrate_step,
        "Rolling": _rolling_step,
        "Rollback": _rolling_step,
    }[up.kind]
    handler(s, observed, up)


def _primary_manifests(s: _Step, version: str, *, components: tuple[builders.ServingComponent, ...]
                       = builders.SERVING_COMPONENTS, production_replicas: int | None = None) -> None:
    for component in components:
        replicas = production_replicas if component == "api-production" else None
        s.d.apply.append(builders.deployment(s.inst, component, version, replicas=replicas))
        if component in builders.SERVICE_COMPONENTS:
            s.d.apply.append(builders.service(s.inst, component, version))


def _converge_primary(s: _Step, version: str) -> None:
    """Keep the running version's objects as they should be (drift, deleted objects, spec edits)."""
    _primary_manifests(s, version)


def _names(s: _Step, *components: builders.ServingComponent) -> list[str]:
    return [builders.workload_name(s.inst.name, c) for c in components]


def _all_rolled_out(s: _Step, observed: Observed, version: str,
                    components: tuple[builders.ServingComponent, ...] = builders.SERVING_COMPONENTS) -> bool:
    return all(observed.rolled_out(builders.workload_name(s.inst.name, c), version) for c in components)


def _api_url(s: _Step, observed: Observed, deployment_name: str, slot: builders.Slot, db: str | None) -> str | None:
    if s.ctx.api_addressing == "service":
        return builders.api_service_url(s.inst, slot, db)
    ips = observed.pod_ips.get(deployment_name, ())
    return f"http://{ips[0]}:{builders.HTTP_PORT}" if ips else None


def _job_record(up: UpgradeStatus, purpose: str) -> JobRecord | None:
    return next((j for j in reversed(up.jobs) if j.purpose == purpose), None)


def _attempt(up: UpgradeStatus, purpose: str) -> int:
    return sum(1 for j in up.jobs if j.purpose == purpose)


def _job_name(s: _Step, up: UpgradeStatus, purpose: str, attempt: int) -> str:
    if purpose == "Install":
        return builders.install_job_name(s.inst.name, up.to_db_version or "", attempt)
    return builders.migration_job_name(s.inst.name, up.from_db_version or "", up.to_db_version or "", attempt)


def _free_attempt(s: _Step, observed: Observed, up: UpgradeStatus, purpose: str, start: int) -> int:
    """The first attempt from `start` whose Job name no existing Job has: a Job left by an earlier,
    abandoned upgrade (or one before a rollback) is never adopted as this upgrade's outcome."""
    attempt = start
    while _job_name(s, up, purpose, attempt) in observed.jobs:
        attempt += 1
    return attempt


def _attempt_of(s: _Step, up: UpgradeStatus, purpose: str, name: str) -> int:
    return next((n for n in range(1, 100) if _job_name(s, up, purpose, n) == name), _attempt(up, purpose))


def _run_job(s: _Step, observed: Observed, up: UpgradeStatus, purpose: str, build: Any) -> JobRecord | None:
    """Record, then create, then follow one Job. Returns its record once it has an outcome.

    The record comes first: a crash between recording and creating only delays the creation, and the
    deterministic name makes a second creation a no-op (409), so a Job never runs twice.
    """
    record = _job_record(up, purpose)
    if record is None:
        name = _job_name(s, up, purpose, _free_attempt(s, observed, up, purpose, 1))
        up.jobs.append(JobRecord(name=name, purpose=purpose, outcome="Running", started_at=s.ctx.now))  # type: ignore[arg-type]
        s.event("Normal", f"{purpose}JobStarting", f"starting Job {name}")
        s.wait(0.1)  # recorded first; created on the next pass
        return None
    if record.outcome != "Running":
        return record
    job = observed.jobs.get(record.name)
    if job is None:
        manifest = build(_attempt_of(s, up, purpose, record.name))
        if manifest is None:
            s.wait()
            return None
        s.d.create.append(manifest)
        s.wait()
        return None
    if job.phase == "Running":
        s.wait()
        return None
    record.outcome = job.phase
    record.finished_at = s.ctx.now
    if job.phase == "Failed":
        failure = jobresults.parse_failure(job.result)
        record.reason = failure.error if failure else f"{purpose}Failed"
        record.message = ((failure.message if failure else "") or job.message or "the Job failed")[:4000]
    else:
        record.message = None
    return record


def _install_job(s: _Step, observed: Observed, up: UpgradeStatus, api_deployment: str,
                 slot: builders.Slot) -> JobRecord | None:
    db = up.to_db_version or ""

    def build(attempt: int) -> dict[str, Any] | None:
        if not observed.settled(api_deployment, up.to_version):
            return None  # a spec edit (e.g. spec.env before a retry) is still rolling: not through an old pod
        url = _api_url(s, observed, api_deployment, slot, db if slot == "candidate" else None)
        if url is None:
            return None
        return builders.install_job(
            s.inst, builders.InstallRequest(version=up.to_version, db_version=db, api_url=url, attempt=attempt),
            s.ctx.builder,
        )

    return _run_job(s, observed, up, "Install", build)


def _fail(s: _Step, up: UpgradeStatus, record: JobRecord) -> None:
    up.step = "Failed"
    reason = record.reason or f"{record.purpose}Failed"
    message = (
        f"Job {record.name} failed ({reason}): {record.message}. {up.from_version or 'nothing'} keeps running; "
        f"fix the cause, then set the annotation tracardi.com/retry to a new value to try again"
    )
    up.message = message
    s.cond(DEGRADED, True, reason, message)
    s.cond(PROGRESSING, False, reason, message)
    s.event("Warning", reason, message)


def _record_installed(s: _Step, up: UpgradeStatus, record: JobRecord, observed: Observed) -> bool:
    """Take (db version, tenant) from what the new API reported to the install Job."""
    job = observed.jobs.get(record.name)
    result = jobresults.parse_install(job.result if job else None)
    if result is None or not result.tenant:
        up.step = "Failed"
        record.outcome = "Failed"
        record.reason = "InstallResultMissing"
        record.message = "the install Job succeeded but reported no db version and tenant"
        _fail(s, up, record)
        return False
    reported_db = result.db_version or up.to_db_version
    if reported_db != up.to_db_version:
        record.outcome = "Failed"
        record.reason = "UnexpectedDbVersion"
        record.message = (f"the API of {up.to_version} reports db version {reported_db}, "
                          f"expected {up.to_db_version}; refusing to go on")
        _fail(s, up, record)
        return False
    up.to_tenant = result.tenant
    return True


def _installed(s: _Step, observed: Observed, up: UpgradeStatus, api_deployment: str, slot: builders.Slot) -> bool:
    """Run the install Job to its end; True once it succeeded and the new version's (db, tenant) is
    recorded, False while it runs or after it failed (the failure is recorded)."""
    record = _install_job(s, observed, up, api_deployment, slot)
    if record is None:
        return False
    if record.outcome == "Failed":
        _fail(s, up, record)
        return False
    return _record_installed(s, up, record, observed)


# -- Install (first version) -------------------------------------------------------------------------


def _install_step(s: _Step, observed: Observed, up: UpgradeStatus) -> None:
    version = up.to_version
    api = builders.workload_name(s.inst.name, "api")
    if up.step == "StartingCandidate":
        _primary_manifests(s, version, components=("api", "worker"))
        if not observed.serving(api) or (not observed.pod_ips.get(api) and s.ctx.api_addressing == "pod"):
            s.cond(PROGRESSING, True, "StartingApi", f"waiting for the API of {version} to be ready")
            s.wait()
            return
        up.step = "Installing"
        s.wait(0.1)
        return
    if up.step == "Installing":
        _primary_manifests(s, version, components=("api", "worker"))
        s.cond(PROGRESSING, True, "Installing", f"installing {version}")
        if not _installed(s, observed, up, api, "primary"):
            return
        s.status.versions.append(VersionRecord(
            version=version, db_version=up.to_db_version or "", tenant=up.to_tenant or "",
            state="Current", installed_at=s.ctx.now,
        ))
        s.status.current_version = version
        up.step = "Switching"
        s.event("Normal", "Installed", f"{version} installed (db {up.to_db_version}, tenant {up.to_tenant})")
        s.wait(0.1)
        return
    # Switching: start production API and GUI now that the version is installed.
    _primary_manifests(s, version)
    if not _all_rolled_out(s, observed, version):
        s.cond(PROGRESSING, True, "StartingComponents", f"waiting for every component of {version}")
        s.wait()
        return
    _complete(s, up)


# -- Rolling and Rollback ----------------------------------------------------------------------------


def _rolling_step(s: _Step, observed: Observed, up: UpgradeStatus) -> None:
    version = up.to_version
    _primary_manifests(s, version)
    s.cond(PROGRESSING, True, "Rolling" if up.kind == "Rolling" else "RollingBack",
           f"rolling every component to {version}")
    if not _all_rolled_out(s, observed, version):
        s.wait()
        return
    old = _current_record(s.status)
    if up.kind == "Rollback":
        target = next((r for r in reversed(s.status.versions)
                       if r.db_version == up.to_db_version and r.state == "Superseded"), None)
        if old is not None:
            old.state, old.superseded_at = "Superseded", s.ctx.now
        if target is not None:
            target.state, target.superseded_at, target.version = "Current", None, version
        s.event("Warning", "RolledBack",
                f"rolled back to {version}; data written to {up.from_version} since the upgrade is not carried back")
    else:
        if old is not None:
            old.state, old.superseded_at = "Superseded", s.ctx.now
        s.status.versions.append(VersionRecord(
            version=version, db_version=up.to_db_version or (old.db_version if old else ""),
            tenant=old.tenant if old else "", state="Current", installed_at=s.ctx.now,
            migrated_from=None,
        ))
    s.status.current_version = version
    _complete(s, up)


# -- Migrate -----------------------------------------------------------------------------------------


def _candidate_manifests(s: _Step, version: str, db: str) -> None:
    for component in builders.CANDIDATE_COMPONENTS:
        s.d.apply.append(builders.deployment(s.inst, component, version, slot="candidate", db_version=db))
    s.d.apply.append(builders.service(s.inst, "api", version, slot="candidate", db_version=db))


def _delete_candidates(s: _Step, db: str) -> None:
    for component in builders.CANDIDATE_COMPONENTS:
        s.d.delete.append(("apps/v1", "Deployment", builders.workload_name(s.inst.name, component, "candidate", db)))
    s.d.delete.append(("v1", "Service", builders.workload_name(s.inst.name, "api", "candidate", db)))


def _offline(s: _Step) -> bool:
    return s.inst.spec.upgrade.strategy == "Offline"


def _migrate_step(s: _Step, observed: Observed, up: UpgradeStatus) -> None:
    version, db = up.to_version, up.to_db_version or ""
    old = up.from_version or ""
    candidate_api = builders.workload_name(s.inst.name, "api", "candidate", db)
    if up.step in ("StartingCandidate", "Installing", "Migrating"):
        _candidate_manifests(s, version, db)
        production_replicas = 0 if (_offline(s) and up.step == "Migrating") else None
        _primary_manifests(s, old, production_replicas=production_replicas)
    migration_started = any(j.purpose == "Migrate" for j in up.jobs)
    if _reverted(s, up) and up.step == "Switching" and _target_applied(s, observed, version):
        # The production API may already have served the target: going back is a rollback.
        _roll_back_switch(s, up, old)
        return
    if _reverted(s, up) and up.step == "Switching":
        # Verified, but the switch was never applied: nothing served the target.
        _abandon(s, up, old)
        return
    if _reverted(s, up) and not migration_started:
        # Before the migration Job exists nothing is lost by stopping.
        _abandon(s, up, old)
        return
    if up.step == "StartingCandidate":
        s.cond(PROGRESSING, True, "StartingCandidate", f"starting {version} beside {old}")
        if not observed.serving(candidate_api) or (s.ctx.api_addressing == "pod"
                                                    and not observed.pod_ips.get(candidate_api)):
            s.wait()
            return
        up.step = "Installing"
        s.wait(0.1)
        return
    if up.step == "Installing":
        s.cond(PROGRESSING, True, "Installing", f"installing {version} beside {old}")
        if not _installed(s, observed, up, candidate_api, "candidate"):
            return
        if up.merged_suffix is None:
            up.merged_suffix = quarter_suffix(s.ctx.now)
        up.step = "Migrating"
        s.event("Normal", "Installed", f"{version} installed beside {old} (db {db}, tenant {up.to_tenant})")
        s.wait(0.1)
        return
    if up.step == "Migrating":
        strategy = ("Offline: event collection is paused while the data is copied" if _offline(s) else
                    "Online: events written to the old version during the copy are not carried over")
        s.cond(PROGRESSING, True, "Migrating", f"migrating {up.from_db_version} → {db}; {strategy}")
        if _offline(s) and not observed.settled(builders.workload_name(s.inst.name, "api-production"), old):
            s.wait()  # wait until the old production API is really down
            return
        record = _migration_job(s, observed, up, candidate_api)
        if record is None:
            return
        if record.outcome == "Failed":
            _fail(s, up, record)
            return
        job = observed.jobs.get(record.name)
        _record_verified(up, job.result if job else None)
        up.step = "Switching"
        s.event("Normal", "Migrated", f"{up.from_db_version} → {db} migrated and verified ({record.name})")
        s.wait(0.1)
        return
    # Switching: the outcome is recorded; move every component to the new version.
    _primary_manifests(s, version)
    _delete_candidates(s, db)
    s.cond(PROGRESSING, True, "Switching", f"switching every component to {version}")
    if not _all_rolled_out(s, observed, version):
        s.wait()
        return
    previous = _current_record(s.status)
    if previous is not None:
        previous.state, previous.superseded_at = "Superseded", s.ctx.now
    s.status.versions.append(VersionRecord(
        version=version, db_version=db, tenant=up.to_tenant or "", state="Current",
        installed_at=s.ctx.now, migrated_from=old or None, migration_verified=_verified(up),
    ))
    s.status.current_version = version
    s.event("Normal", "Switched", f"{version} serves; {old} is superseded")
    _complete(s, up)


def quarter_suffix(now: dt.datetime) -> str:
    """The partition suffix merged event and profile data goes to, decided once per migration."""
    return f"{now.year}-q{(now.month - 1) // 3 + 1}"


def _migration_job(s: _Step, observed: Observed, up: UpgradeStatus, candidate_api: str) -> JobRecord | None:
    def build(attempt: int) -> dict[str, Any] | None:
        # The copy runs in the candidate worker and is driven through the candidate API: both must run
        # the current spec (a retry after fixing spec.env must not reach a pod that still has the fault).
        worker = builders.workload_name(s.inst.name, "worker", "candidate", up.to_db_version)
        if not (observed.settled(candidate_api, up.to_version) and observed.settled(worker, up.to_version)):
            return None
        url = _api_url(s, observed, candidate_api, "candidate", up.to_db_version)
        if url is None:
            return None
        return builders.migration_job(s.inst, builders.MigrationRequest(
            from_version=up.from_version or "", from_db_version=up.from_db_version or "",
            from_tenant=up.from_tenant or "", to_version=up.to_version, to_db_version=up.to_db_version or "",
            to_tenant=up.to_tenant or "", api_url=url, attempt=attempt, merged_suffix=up.merged_suffix,
        ), s.ctx.builder)

    return _run_job(s, observed, up, "Migrate", build)


def _record_verified(up: UpgradeStatus, raw: Mapping[str, Any] | None) -> None:
    """The migration Job's figures: totals per context, and per resource what repair had to copy."""
    up.verified = []
    result = jobresults.parse_migration(raw)
    if result is None:
        return
    src_db, dst_db = result.from_db or up.from_db_version, result.to_db or up.to_db_version
    for context in ("staging", "production"):
        figures = result.contexts.get(context)
        if figures is None:
            continue
        prefix = "prod-" if context == "production" else ""
        # One id in several merged partitions, and ids deleted after the cutoff, are no loss.
        accounted = figures.dest_docs + figures.collapsed_ids
        up.verified.append(VerifiedCount(
            context=context, resource="*", source_index=f"{prefix}{src_db}.{up.from_tenant}.tracardi-*",
            destination_index=f"{prefix}{dst_db}.{up.to_tenant}.tracardi-*", source_count=figures.source_docs,
            destination_count=figures.dest_docs, ok=accounted >= figures.source_docs,
        ))
        for resource, counts in sorted(result.repaired.get(context, {}).items()):
            landed = counts.created + counts.present
            up.verified.append(VerifiedCount(
                context=context, resource=resource,
                source_index=f"{prefix}{src_db}.{up.from_tenant}.tracardi-{resource}*",
                destination_index=f"{prefix}{up.to_tenant}.tracardi-{resource} (repaired)",
                source_count=counts.total, destination_count=landed, ok=landed >= counts.total,
            ))


# -- Completion, failure, retry ----------------------------------------------------------------------


def _complete(s: _Step, up: UpgradeStatus) -> None:
    up.step = "Completed"
    up.message = f"{up.to_version} is running"
    if up.remaining:
        s.cond(PROGRESSING, True, "NextStep", f"{up.to_version} done; going on to {up.remaining[0]}")
        s.wait(0.1)
    else:
        s.cond(PROGRESSING, False, "UpToDate", f"{up.to_version} is running")
        s.event("Normal", "UpgradeCompleted", f"{up.to_version} is running")
    s.cond(DEGRADED, False, "AsExpected", "nothing failed")


def _abandon(s: _Step, up: UpgradeStatus, current: str) -> None:
    """The person gave up on the target before it served: remove the candidates, the old version
    serves as before. A target already installed is recorded Abandoned: it never served, so it is no
    rollback target and takes no keepSupersededVersions slot; its indices (half-copied, perhaps) are
    never migrated into again (see _target_is_fresh) and retention reclaims them as garbage."""
    _go_back(s, up, current, VersionRecord(
        version=up.to_version, db_version=up.to_db_version or "", tenant=up.to_tenant or "", state="Abandoned",
        installed_at=s.ctx.now, superseded_at=s.ctx.now,
    ))
    up.message = f"abandoned: spec.version is back to {current}"
    s.cond(DEGRADED, False, "UpgradeAbandoned", up.message)
    s.cond(PROGRESSING, False, "UpToDate", f"{current} is running")
    s.event("Normal", "UpgradeAbandoned", up.message)


def _roll_back_switch(s: _Step, up: UpgradeStatus, current: str) -> None:
    """spec.version set back while switching: the target may have served production, so it is a
    rollback. The target is recorded Superseded (with supersededAt: a rollback target, aged and kept
    by the policy like any other) and the old version serves again."""
    _go_back(s, up, current, VersionRecord(
        version=up.to_version, db_version=up.to_db_version or "", tenant=up.to_tenant or "", state="Superseded",
        installed_at=s.ctx.now, superseded_at=s.ctx.now, migrated_from=up.from_version or None,
        migration_verified=_verified(up),
    ))
    up.message = f"rolled back to {current} while switching to {up.to_version}"
    message = (f"rolled back to {current} while {up.to_version} was being switched in: data written to "
               f"{up.to_version} since it served is not carried back")
    s.cond(DEGRADED, False, "RolledBack", up.message)
    s.cond(PROGRESSING, False, "UpToDate", f"{current} is running")
    s.event("Warning", "RolledBack", message)


def _target_applied(s: _Step, observed: Observed, version: str) -> bool:
    """Whether a serving Deployment was already given the target's pod template (its pods may have
    served with it)."""
    names = [builders.workload_name(s.inst.name, c) for c in builders.SERVING_COMPONENTS]
    return any((d := observed.deployments.get(n)) is not None and d.version == version for n in names)


def _go_back(s: _Step, up: UpgradeStatus, current: str, target: VersionRecord) -> None:
    """The upgrade ends without switching: candidates removed, `current` serves, and the target, if it
    was installed (its tenant is known), recorded as `target` says, once."""
    _delete_candidates(s, up.to_db_version or "")
    _converge_primary(s, current)
    if up.to_tenant and up.to_db_version and not any(
            r.db_version == up.to_db_version and r.tenant == up.to_tenant for r in s.status.versions):
        s.status.versions.insert(len(s.status.versions) - 1, target)
    up.step = "Completed"


def _verified(up: UpgradeStatus) -> bool:
    """The migration Job's verification, as recorded: every count it reported was complete."""
    return bool(up.verified) and all(v.ok for v in up.verified)


def _reverted(s: _Step, up: UpgradeStatus) -> bool:
    """spec.version was set back to the running version while a migration was under way."""
    return up.kind == "Migrate" and s.status.current_version is not None \
        and s.inst.spec.version == s.status.current_version


def _failed(s: _Step, observed: Observed) -> None:
    up = s.status.upgrade
    assert up is not None
    spec_version = s.inst.spec.version
    current = s.status.current_version
    failed = next((j for j in reversed(up.jobs) if j.outcome == "Failed"), None)
    if current is not None and spec_version == current and up.kind == "Migrate":
        _abandon(s, up, current)
        return
    # What the retry will run through stays as the spec says: a person fixes the cause (spec.env, ...)
    # while failed, and the fix reaches the side-by-side API and worker before the retry starts a Job.
    if up.kind == "Migrate":
        _candidate_manifests(s, up.to_version, up.to_db_version or "")
    elif up.kind == "Install" and current is None:
        _primary_manifests(s, up.to_version, components=("api", "worker"))
    retry = s.ctx.retry
    if retry and retry != s.status.handled_retry and failed is not None:
        s.status.handled_retry = retry
        attempt = _free_attempt(s, observed, up, failed.purpose, _attempt_of(s, up, failed.purpose, failed.name) + 1)
        up.jobs.append(JobRecord(name=_job_name(s, up, failed.purpose, attempt), purpose=failed.purpose,
                                 outcome="Running", started_at=s.ctx.now))
        up.step = "Installing" if failed.purpose == "Install" else "Migrating"
        s.cond(DEGRADED, False, "Retrying", f"retrying {failed.purpose.lower()} as asked by tracardi.com/retry={retry}")
        s.cond(PROGRESSING, True, "Retrying", f"attempt {attempt} of the {failed.purpose.lower()} Job")
        s.event("Normal", "Retrying", f"attempt {attempt} of the {failed.purpose.lower()} Job (tracardi.com/retry)")
        s.wait(0.1)
        return
    # Keep the old version serving while failed (Offline: production back up).
    if current is not None:
        _converge_primary(s, current)
    if failed is not None:
        s.cond(DEGRADED, True, failed.reason or "JobFailed", up.message or "the upgrade failed")
        s.cond(PROGRESSING, False, failed.reason or "JobFailed", up.message or "the upgrade failed")


# ---------------------------------------------------------------------------------------------------
# Ready


def _ready(s: _Step, observed: Observed) -> None:
    current = s.status.current_version
    if current is None:
        s.cond(READY, False, "NotInstalled", "no version is installed yet")
        return
    names = _names(s, "api", "api-production", "gui")
    down = [n for n in names if not observed.serving(n)]
    up = s.status.upgrade
    offline = up is not None and up.step == "Migrating" and _offline(s)
    production_name = builders.workload_name(s.inst.name, "api-production")
    production = observed.deployments.get(production_name)
    # `serving` counts a Deployment scaled to zero as fine; a production API at zero replicas that the
    # spec wants running collects no events (the old one during an Offline copy, or while switching).
    scaled_down = (production is not None and production.replicas == 0
                   and s.inst.spec.replicas.api_production > 0)
    if scaled_down and production_name not in down:
        down.append(production_name)
    if s.inst.spec.paused and not observed.deployments:
        s.cond(READY, False, "Paused", "paused before anything was deployed")
    elif offline and up is not None and production_name in down:
        s.cond(READY, False, "OfflineMigration",
               f"event collection is paused: the production API of {current} is scaled to zero while "
               f"{up.from_db_version} → {up.to_db_version} is copied (upgrade.strategy Offline)")
    elif down:
        s.cond(READY, False, "ComponentsUnavailable", f"not serving yet: {', '.join(down)}")
    else:
        s.cond(READY, True, "Serving", f"{current} serves")
