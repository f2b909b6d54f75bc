"""The install and migration Jobs of a step (pure): recorded, then created under a deterministic
name, then followed to their outcome; what a Job reported taken into status (the new version's db
version and tenant, the migration's verified counts); a failure recorded as Degraded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracardi_operator import builders, jobresults
from tracardi_operator.models import JobRecord, UpgradeStatus, VerifiedCount
from tracardi_operator.observe import Observed
from tracardi_operator.reasons import Reason, job_failed
from tracardi_operator.rollout.draft import DEGRADED, PROGRESSING, Draft
from tracardi_operator.rollout.workloads import api_url


def _job_record(up: UpgradeStatus, purpose: str) -> JobRecord | None:
    return next((j for j in reversed(up.jobs) if j.purpose == purpose), None)


def _attempt(up: UpgradeStatus, purpose: str) -> int:
    return sum(1 for j in up.jobs if j.purpose == purpose)


def job_name(s: Draft, up: UpgradeStatus, purpose: str, attempt: int) -> str:
    if purpose == "Install":
        return builders.install_job_name(s.inst.name, up.to_db_version or "", attempt)
    return builders.migration_job_name(s.inst.name, up.from_db_version or "", up.to_db_version or "", attempt)


def free_attempt(s: Draft, observed: Observed, up: UpgradeStatus, purpose: str, start: int) -> int:
    """The first attempt from `start` whose Job name no existing Job has: a Job left by an earlier,
    abandoned upgrade (or one before a rollback) is never adopted as this upgrade's outcome."""
    attempt = start
    while job_name(s, up, purpose, attempt) in observed.jobs:
        attempt += 1
    return attempt


def attempt_of(s: Draft, up: UpgradeStatus, purpose: str, name: str) -> int:
    return next((n for n in range(1, 100) if job_name(s, up, purpose, n) == name), _attempt(up, purpose))


def _run_job(s: Draft, observed: Observed, up: UpgradeStatus, purpose: str, build: Any) -> JobRecord | None:
    """Record, then create, then follow one Job. Returns its record once it has an outcome.

    The record comes first: a crash between recording and creating only delays the creation, and the
    deterministic name makes a second creation a no-op (409), so a Job never runs twice.
    """
    record = _job_record(up, purpose)
    if record is None:
        name = job_name(s, up, purpose, free_attempt(s, observed, up, purpose, 1))
        up.jobs.append(JobRecord(name=name, purpose=purpose, outcome="Running", started_at=s.ctx.now))  # type: ignore[arg-type]
        s.event("Normal", Reason(f"{purpose}JobStarting"), f"starting Job {name}")
        s.wait(0.1)  # recorded first; created on the next pass
        return None
    if record.outcome != "Running":
        return record
    job = observed.jobs.get(record.name)
    if job is None:
        manifest = build(attempt_of(s, up, purpose, record.name))
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
        record.reason = failure.error if failure else job_failed(purpose)
        record.message = ((failure.message if failure else "") or job.message or "the Job failed")[:4000]
    else:
        record.message = None
    return record


def _install_job(s: Draft, observed: Observed, up: UpgradeStatus, api_deployment: str,
                 slot: builders.Slot) -> JobRecord | None:
    db = up.to_db_version or ""

    def build(attempt: int) -> dict[str, Any] | None:
        if not observed.settled(api_deployment, up.to_version):
            return None  # a spec edit (e.g. spec.env before a retry) is still rolling: not through an old pod
        url = api_url(s, observed, api_deployment, slot, db if slot == "candidate" else None)
        if url is None:
            return None
        return builders.install_job(
            s.inst, builders.InstallRequest(version=up.to_version, db_version=db, api_url=url, attempt=attempt),
            s.ctx.builder,
        )

    return _run_job(s, observed, up, "Install", build)


def fail(s: Draft, up: UpgradeStatus, record: JobRecord) -> None:
    up.step = "Failed"
    reason = record.reason or job_failed(record.purpose)
    message = (
        f"Job {record.name} failed ({reason}): {record.message}. {up.from_version or 'nothing'} keeps running; "
        f"fix the cause, then set the annotation tracardi.com/retry to a new value to try again"
    )
    up.message = message
    s.cond(DEGRADED, True, reason, message)
    s.cond(PROGRESSING, False, reason, message)
    s.event("Warning", reason, message)


def _record_installed(s: Draft, up: UpgradeStatus, record: JobRecord, observed: Observed) -> bool:
    """Take (db version, tenant) from what the new API reported to the install Job."""
    job = observed.jobs.get(record.name)
    result = jobresults.parse_install(job.result if job else None)
    if result is None or not result.tenant:
        up.step = "Failed"
        record.outcome = "Failed"
        record.reason = Reason.INSTALL_RESULT_MISSING
        record.message = "the install Job succeeded but reported no db version and tenant"
        fail(s, up, record)
        return False
    reported_db = result.db_version or up.to_db_version
    if reported_db != up.to_db_version:
        record.outcome = "Failed"
        record.reason = Reason.UNEXPECTED_DB_VERSION
        record.message = (f"the API of {up.to_version} reports db version {reported_db}, "
                          f"expected {up.to_db_version}; refusing to go on")
        fail(s, up, record)
        return False
    up.to_tenant = result.tenant
    return True


def installed(s: Draft, observed: Observed, up: UpgradeStatus, api_deployment: str, slot: builders.Slot) -> bool:
    """Run the install Job to its end; True once it succeeded and the new version's (db, tenant) is
    recorded, False while it runs or after it failed (the failure is recorded)."""
    record = _install_job(s, observed, up, api_deployment, slot)
    if record is None:
        return False
    if record.outcome == "Failed":
        fail(s, up, record)
        return False
    return _record_installed(s, up, record, observed)


def migration_job(s: Draft, observed: Observed, up: UpgradeStatus, candidate_api: str) -> JobRecord | None:
    def build(attempt: int) -> dict[str, Any] | None:
        # The copy runs in the candidate worker and is driven through the candidate API: both must run
        # the current spec (a retry after fixing spec.env must not reach a pod that still has the fault).
        worker = builders.workload_name(s.inst.name, "worker", "candidate", up.to_db_version)
        if not (observed.settled(candidate_api, up.to_version) and observed.settled(worker, up.to_version)):
            return None
        url = api_url(s, observed, candidate_api, "candidate", up.to_db_version)
        if url is None:
            return None
        return builders.migration_job(s.inst, builders.MigrationRequest(
            from_version=up.from_version or "", from_db_version=up.from_db_version or "",
            from_tenant=up.from_tenant or "", to_version=up.to_version, to_db_version=up.to_db_version or "",
            to_tenant=up.to_tenant or "", api_url=url, attempt=attempt, merged_suffix=up.merged_suffix,
        ), s.ctx.builder)

    return _run_job(s, observed, up, "Migrate", build)


def record_verified(up: UpgradeStatus, raw: Mapping[str, Any] | None) -> None:
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
