"""The migration Job: drive Tracardi's own migration of both contexts, repair what it skipped, verify.

Steps (docs/tracardi.md §5, §8; docs/tracardi-migration-transforms.md §5):
1. wait for the new version's API; it must report the target (db version, tenant);
2. log in; `GET /migrations` must offer the source db version (else MigrationNotOffered);
3. per context, staging then production: list the copies, `POST /migration` with their ids, and wait
   until every listed copy has a SUCCESS task. 0.8.1 ignores `x-context` (its staging listing already
   holds the production copies and one POST runs both): production is then not posted again. When
   copy tasks for the listed entries exist already (a rerun of this Job, i.e. a retry a person asked
   for), only the copies whose task ended FAILURE or REVOKED, or that were never started, are posted;
   running or finished copies are awaited, never started twice. Tasks are read from a listing proven
   complete (Tracardi shows only the 50 newest unless asked for more). A POST answered with a 5xx (or
   not at all) is sent again only when no copy of it appeared within a grace period (Tracardi may have
   queued it anyway);
4. for a 0820 target with `--repair Auto`, copy what Tracardi skipped or mislaid (`repair`);
5. verify every source index against a destination readable through the target's aliases (`verify`).

Which copy task belongs to which listed entry is read in `tasks`.

Reasons: ApiUnreachable, TargetMismatch, LoginRejected, MigrationNotOffered, MigrationNotStarted,
MigrationTaskFailed, TaskListingIncomplete, TargetNotInstalled, RepairFailed, MigrationIncomplete, Timeout,
ApiError, ElasticsearchError.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracardi_operator.indices import VersionId
from tracardi_operator.jobresults import ContextFigures, MigrationResult, RepairFigures
from tracardi_operator.jobs import observe
from tracardi_operator.jobs.common import Deadline, JobError, Log
from tracardi_operator.jobs.es import EsClient, EsError
from tracardi_operator.jobs.install import wait_for_api
from tracardi_operator.jobs.repair import (
    CopyOutcome,
    execute_repair,
    plan_repair,
    quarter_suffix,
    repair_applies,
    repair_summary,
)
from tracardi_operator.jobs.tasks import FAILED_STATES, ORCHESTRATOR_NAME, api_errors, list_copy_tasks, match_tasks
from tracardi_operator.jobs.verify import (
    failure_message,
    failures,
    judge,
    plan_checks,
    source_indices,
    summarize,
)
from tracardi_operator.reasons import Reason
from tracardi_operator.tracardi_api import (
    CONTEXTS,
    MigrationEntry,
    TracardiApi,
    TracardiApiError,
)


@dataclass(frozen=True)
class MigrationRequest:
    source: VersionId
    target: VersionId
    repair: bool
    merged_suffix: str | None


def unique_ids(entries: Sequence[MigrationEntry]) -> list[str]:
    return list(dict.fromkeys(entry.id for entry in entries if entry.id))


def includes_production(entries: Sequence[MigrationEntry]) -> bool:
    """0.8.1 ignores x-context: its staging listing already lists the production copies."""
    # By the name, not by the `production` flag: 0.8.2.1 marks its prod- entries production: false.
    return any(entry.from_index.startswith("prod-") for entry in entries)


def run_tracardi_migration(
    api: TracardiApi, request: MigrationRequest, deadline: Deadline, log: Log
) -> list[MigrationEntry]:
    """Steps 2 and 3: every entry Tracardi listed (both contexts), once its copies all succeeded."""
    with api_errors("GET /migrations"):
        offered = api.migrations()
    if request.source.db not in offered:
        raise JobError(
            Reason.MIGRATION_NOT_OFFERED,
            f"the target API offers migrations from {offered or 'nothing'}, not from "
            f"{request.source.db}: upgrade through the intermediate version",
        )
    listed: list[MigrationEntry] = []
    for context in CONTEXTS:
        if context == "production" and includes_production(listed):
            log("migration.context-included", context=context)
            continue
        with api_errors(f"GET /migration/{request.source.db}"):
            listing = api.migration_schemas(request.source.db, request.source.tenant, context)
        entries = [e for e in listing.entries if e.from_index not in {x.from_index for x in listed}]
        log("migration.listed", context=context, entries=len(entries), warn=listing.warn)
        listed.extend(entries)
        if entries:
            _copy_context(api, request, entries, context, deadline, log)
    return listed


def _copy_context(
    api: TracardiApi,
    request: MigrationRequest,
    entries: Sequence[MigrationEntry],
    context: str,
    deadline: Deadline,
    log: Log,
) -> None:
    before = list_copy_tasks(api, entries, context)
    earlier = match_tasks(entries, before)
    if len(earlier) < len(entries) and any(t.name == ORCHESTRATOR_NAME for t in before):
        # An earlier run posted and died before the worker turned its orchestrator into copies (a Job
        # killed right after its POST): give the worker the grace period to list them, so that none of
        # them is taken for a copy never started and posted again.
        window = Deadline(min(POST_GRACE, deadline.remaining), clock=deadline.clock, sleep=deadline.sleep)
        for _ in window.pauses(first=1.0, cap=5.0):
            before = list_copy_tasks(api, entries, context)
            earlier = match_tasks(entries, before)
            if len(earlier) == len(entries):
                break
    if earlier:
        # A rerun: the copies were started by an earlier run of this Job (a retry a person asked for).
        # A copy still running or done is never started twice; one that ended FAILURE or REVOKED, or one
        # never started (listed only now, e.g. once a listing fault is gone), is started (again): the new
        # version serves nothing before the switch, so nothing it wrote can be overwritten.
        failed_before: set[str] = set()
        for from_index, task in earlier.items():
            with api_errors(f"GET /import/task/{task.task_id}/status"):
                if api.task_status(task.task_id, context).status in FAILED_STATES:
                    failed_before.add(from_index)
        kept = [e for e in entries if e.from_index in earlier and e.from_index not in failed_before]
        again = [e for e in entries if e.from_index in failed_before or e.from_index not in earlier]
        log("migration.already-started", context=context, copies=len(earlier), listed=len(entries),
            failed=len(again))
        # Tasks of the copies started again are looked for among new tasks only.
        known = {task.id for task in before} - {earlier[e.from_index].id for e in kept}
        if again:
            _start(api, request, again, context, deadline, log)
        expected = kept + again
    else:
        _start(api, request, entries, context, deadline, log)
        expected = list(entries)
        known = {task.id for task in before}
    _wait_copies(api, expected, known, context, deadline, log)


POST_GRACE = 30.0
"""Seconds to look for the copies of a POST /migration that got no clean answer before posting again."""


def _start(
    api: TracardiApi,
    request: MigrationRequest,
    entries: Sequence[MigrationEntry],
    context: str,
    deadline: Deadline,
    log: Log,
) -> None:
    """POST /migration for `entries`, exactly once.

    A POST is not retried blindly: a 5xx or a lost answer may come after Tracardi queued the work. The
    copies are looked for first (the worker lists them within seconds); only when none appeared is the
    POST sent again.
    """
    ids = unique_ids(entries)
    for attempt in range(3):
        known = {task.id for task in list_copy_tasks(api, entries, context)}
        try:
            started = api.start_migration(request.source.db, request.source.tenant, ids, context)
        except TracardiApiError as error:
            if error.status is not None and error.status < 500:
                raise JobError(Reason.API_ERROR, f"POST /migration: {error.status}: {error.detail}") from None
            log("migration.post-unanswered", level="warning", context=context, attempt=attempt, status=error.status)
            if _copies_appear(api, entries, known, context, deadline):
                log("migration.started", context=context, ids=len(ids), copies=len(entries), answered=False)
                return
            continue
        if started is None:
            raise JobError(
                Reason.MIGRATION_NOT_STARTED,
                f"POST /migration matched none of the {len(ids)} listed ids in {context}",
            )
        log("migration.started", context=context, ids=len(ids), copies=len(entries))
        return
    raise JobError(Reason.API_ERROR, f"POST /migration failed 3 times in {context} and no copy started")


def _copies_appear(
    api: TracardiApi, entries: Sequence[MigrationEntry], known: set[str], context: str, deadline: Deadline
) -> bool:
    window = Deadline(min(POST_GRACE, deadline.remaining), clock=deadline.clock, sleep=deadline.sleep)
    for _ in window.pauses(first=1.0, cap=5.0):
        tasks = [t for t in list_copy_tasks(api, entries, context) if t.id not in known]
        if match_tasks(entries, tasks):
            return True
    return False


def _wait_copies(
    api: TracardiApi,
    expected: Sequence[MigrationEntry],
    known: set[str],
    context: str,
    deadline: Deadline,
    log: Log,
) -> None:
    done: set[str] = set()
    for attempt in deadline.pauses(first=0.5, cap=10.0):
        tasks = [t for t in list_copy_tasks(api, expected, context) if t.id not in known]
        matched = match_tasks(expected, tasks)
        for from_index, task in matched.items():
            if from_index in done:
                continue
            with api_errors(f"GET /import/task/{task.task_id}/status"):
                status = api.task_status(task.task_id, context)
            if status.status in FAILED_STATES:
                raise JobError(
                    Reason.MIGRATION_TASK_FAILED,
                    f"Tracardi's copy of {from_index} ended {status.status} ({context}); see the worker's log",
                )
            if status.status == "SUCCESS":
                done.add(from_index)
        if len(done) == len(expected):
            log("migration.copied", context=context, copies=len(done))
            return
        if attempt % 5 == 0:
            log("migration.waiting", context=context, done=len(done), expected=len(expected))
    waiting = sorted(e.from_index for e in expected if e.from_index not in done)
    raise JobError(
        Reason.TIMEOUT,
        f"{len(waiting)} of {len(expected)} copies in {context} not finished in time: {', '.join(waiting[:5])}",
    )


def repair_and_verify(
    es: EsClient,
    request: MigrationRequest,
    listed: Sequence[MigrationEntry],
    deadline: Deadline,
    log: Log,
    today: dt.date,
    cutoff: observe.Cutoff | None = None,
) -> dict[str, Any]:
    """Steps 4 and 5: the success payload, or MigrationIncomplete naming what is not readable.

    With a `cutoff` (the sources frozen before the copy), every id a source held then and still holds
    must be readable through the target's alias; ids written since are not required, and never make
    up for a lost one."""
    layout = observe.read_layout(es)
    sources = [s.name for s in source_indices(layout.index_names, request.source, request.target.db)]
    observe.refresh(es, sources)
    source_counts = observe.counts(es, sources)
    judged_counts, _ = held_to(source_counts, cutoff)
    outcomes: list[CopyOutcome] = []
    repaired: dict[str, str] = {}
    suffix = None
    repairing = request.repair and repair_applies(request.target.db)
    if repairing:
        suffix = request.merged_suffix or quarter_suffix(today)
        if not request.merged_suffix:
            log("repair.merged-suffix", suffix=suffix, decided="now")
        plan = plan_repair(
            layout.index_names,
            layout.alias_targets,
            listed,
            source_counts,
            request.source,
            request.target,
            suffix,
            today,
        )
        log("repair.plan", copies=len(plan.copies), suffix=suffix)
        outcomes = execute_repair(es, plan, deadline, log)
        repaired = plan.destinations()
        layout = observe.read_layout(es)
    checks = plan_checks(
        layout.index_names, layout.alias_targets, listed, request.source, request.target, today, repaired
    )
    observe.refresh(es, {c.destination for c in checks if c.destination in layout.index_names})
    results = [
        judge(check, observe.gather(es, check, judged_counts, duplicates=check.repaired, cutoff=cutoff),
              request.target.db)
        for check in checks
    ]
    for result in results:
        if not result.ok:
            log(
                "verify.failed",
                context=result.context.value,
                resource=result.resource,
                dest=result.destination,
                missing=result.missing,
                problem=result.problem,
            )
    failed = failures(results)
    if failed:
        hint = ""
        if repair_applies(request.target.db) and not request.repair:
            hint = " (Tracardi 0.8.2 skips these; --repair Auto copies them)"
        raise JobError(Reason.MIGRATION_INCOMPLETE, failure_message(failed) + hint, details={"incomplete": failed})
    success = MigrationResult.model_validate({
        "from": request.source.db,
        "to": request.target.db,
        "contexts": {context: ContextFigures.model_validate(figures)
                     for context, figures in summarize(results).items()},
    })
    if repairing:
        success.repaired = {
            context: {resource: RepairFigures.model_validate(figures) for resource, figures in resources.items()}
            for context, resources in repair_summary(outcomes).items()
        }
        success.merged_suffix = suffix
    return success.dump()


def held_to(now: Mapping[str, int], cutoff: Mapping[str, int] | None) -> tuple[dict[str, int], dict[str, int]]:
    """(counts verification requires, documents written since the cut-off) per source index."""
    if cutoff is None:
        return dict(now), {}
    required = {name: min(count, cutoff.get(name, 0)) for name, count in now.items()}
    grown = {name: max(0, count - cutoff.get(name, 0)) for name, count in now.items()}
    return required, grown


def run_migrate(
    api: TracardiApi,
    es: EsClient,
    request: MigrationRequest,
    credentials: tuple[str, str],
    deadline: Deadline,
    log: Log,
    today: dt.date | None = None,
) -> dict[str, Any]:
    details = wait_for_api(api, deadline, log)
    reported = VersionId(details.db_version, details.tenant)
    if reported != request.target:
        raise JobError(
            Reason.TARGET_MISMATCH,
            f"the API at {api.base_url} runs {reported}, not the migration target {request.target}",
        )
    try:
        api.login(*credentials)
    except TracardiApiError as error:
        hint = " (the API must run with EXPOSE_GUI_API=yes)" if error.status == 403 else ""
        raise JobError(Reason.LOGIN_REJECTED, f"POST /user/token: {error.status}: {error.detail}{hint}") from None
    try:
        cutoff = source_cutoff(es, request, deadline)
    except EsError as error:
        raise JobError(Reason.ELASTICSEARCH_ERROR, str(error)) from None
    log("verify.cutoff", indices=len(cutoff), documents=sum(cutoff.values()))
    try:
        listed = run_tracardi_migration(api, request, deadline, log)
        return repair_and_verify(es, request, listed, deadline, log, today or dt.date.today(), cutoff=cutoff)
    except EsError as error:
        raise JobError(Reason.ELASTICSEARCH_ERROR, str(error)) from None
    finally:
        cutoff.close(es)


def source_cutoff(es: EsClient, request: MigrationRequest, deadline: Deadline) -> observe.Cutoff:
    """The source indices frozen before the copy starts: what verification holds the copy to. With the
    Online strategy the old version keeps writing; documents written during the copy are not carried
    over (Tracardi's migration never did), so they must not count as lost, nor make up for lost ones."""
    layout = observe.read_layout(es)
    sources = [s.name for s in source_indices(layout.index_names, request.source, request.target.db)]
    observe.refresh(es, sources)
    return observe.freeze(es, sources, keep_alive_seconds=deadline.remaining + 600)
