"""Repair of what Tracardi 0.8.2's own 08x→0820 migration skips or mislays (docs/tracardi-migration-transforms.md §5).

What lives here: `plan_repair` (pure: which source index to copy where, with which transform) and
`execute_repair` (I/O: one `_reindex` per copy, `op_type: create` and `conflicts: proceed`, so a rerun
neither duplicates nor overwrites anything, then the task's outcome checked for failures).

Destinations are the partitions 0.8.2.1 itself writes (its default `*_PARTITIONING`, docs/tracardi.md
§9): event, log and console-log by month (`-YYYY-M`); profile, session and entity by quarter
(`-YYYY-qN`); item and user-log by year (`-YYYY-year`). So the repaired data sits where 0.8.2.1 would
have written it, and is named as retention and 0.8.2.1's own index listing expect:
- a monthly 08x partition goes to the 0.8.2.1 partition of the same period (`session-2026-11` →
  `session-2026-q4`, `user-log-2026-11` → `user-log-2026-year`, `event-2026-11` → `event-2026-11`);
  several months of one quarter or year meet in one index;
- profile: every source partition into ONE partition `<merged suffix>` (a quarter) per context, so a
  profile saved in several months is one document again; the suffix is decided once by the operator
  and passed in, so a retry in another quarter cannot split ids in two;
- the unpartitioned 08x sources: entity into the merged suffix's quarter (decided once, like the
  profile's), console-log into the current month.
Sources meeting in one destination are copied newest period first: with `op_type: create` the first
copy of an id wins, and the newest is the one Tracardi last saved.
Every such name matches the 0.8.2.1 template pattern `<prefix>.tracardi-<resource>-*-*`, so the
index is created from the template: strict mapping, `_meta.version` 0820 and the read alias.
A source is left alone when Tracardi listed it and its destination is readable, or when it is empty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tracardi_operator.indices import Context, VersionId, parse_index_name
from tracardi_operator.jobs.common import Deadline, JobError, Log
from tracardi_operator.jobs.es import EsClient, EsError
from tracardi_operator.jobs.transforms import PAINLESS
from tracardi_operator.jobs.verify import (
    alias_name,
    index_name,
    listed_destinations,
    source_indices,
    template_name,
)
from tracardi_operator.reasons import Reason
from tracardi_operator.tracardi_api import MigrationEntry

REPAIR_TARGET_DB = "0820"

MONTH = "month"
QUARTER = "quarter"
YEAR = "year"

# resource → how 0.8.2.1 partitions it (docs/tracardi-resources.md, default *_PARTITIONING)
REPAIRABLE: Mapping[str, str] = {
    "event": MONTH,
    "profile": QUARTER,
    "session": QUARTER,
    "log": MONTH,
    "user-log": YEAR,
    "item": YEAR,
    "entity": QUARTER,
    "console-log": MONTH,
}
# Every partition of these goes into the one merged partition (ids saved in several months collapse).
MERGED_RESOURCES = frozenset({"profile"})
TRANSFORM_OF: Mapping[str, str] = {"event": "event", "profile": "profile", "entity": "entity"}


def repair_applies(target_db: str) -> bool:
    return target_db == REPAIR_TARGET_DB


def quarter_suffix(day: dt.date) -> str:
    """The correct quarter partition suffix (`2026-q4`), not Tracardi's `(month % 4) + 1`."""
    return f"{day.year}-q{(day.month - 1) // 3 + 1}"


def month_suffix(day: dt.date) -> str:
    return f"{day.year}-{day.month}"


def year_suffix(day: dt.date) -> str:
    return f"{day.year}-year"


_SUFFIX_OF = {MONTH: month_suffix, QUARTER: quarter_suffix, YEAR: year_suffix}


_SPAN = {MONTH: 1, QUARTER: 3, YEAR: 12}  # months in a period


def period_of(partition: str | None) -> tuple[dt.date, int] | None:
    """(first day, months spanned) of a partition suffix (`2026-11`, `2026-q4`, `2026-year`), or None."""
    if partition is None:
        return None
    year, _, period = partition.partition("-")
    try:
        if period == "year":
            return dt.date(int(year), 1, 1), _SPAN[YEAR]
        if period.startswith("q"):
            return dt.date(int(year), 3 * int(period[1:]) - 2, 1), _SPAN[QUARTER]
        return dt.date(int(year), int(period), 1), _SPAN[MONTH]
    except ValueError:
        return None


def destination_suffix(resource: str, partition: str | None, merged_suffix: str, today: dt.date) -> str:
    """The 0.8.2.1 partition a source (partition) of `resource` is repaired into.

    A source partition goes to the 0.8.2.1 partition holding its period (every monthly 08x partition
    lies inside exactly one). An unpartitioned source (or one coarser than the scheme) goes to the
    partition of the merged suffix's quarter, decided once, when the scheme allows, else of today.
    """
    scheme = REPAIRABLE[resource]
    if resource in MERGED_RESOURCES:
        return merged_suffix
    period = period_of(partition)
    if period is not None and period[1] <= _SPAN[scheme]:
        return _SUFFIX_OF[scheme](period[0])
    decided = period_of(merged_suffix)
    if decided is not None and decided[1] <= _SPAN[scheme]:
        return _SUFFIX_OF[scheme](decided[0])
    return _SUFFIX_OF[scheme](today)


@dataclass(frozen=True)
class RepairCopy:
    context: Context
    resource: str
    source: str
    destination: str
    transform: str | None
    source_docs: int


@dataclass(frozen=True)
class RepairPlan:
    copies: tuple[RepairCopy, ...]
    merged_suffix: str
    templates: tuple[str, ...]

    def destinations(self) -> dict[str, str]:
        """source → destination, to route verification through the repaired copies."""
        return {copy.source: copy.destination for copy in self.copies}


def plan_repair(
    index_names: Iterable[str],
    alias_targets: Mapping[str, Iterable[str]],
    entries: Iterable[MigrationEntry],
    source_counts: Mapping[str, int],
    source: VersionId,
    target: VersionId,
    merged_suffix: str,
    today: dt.date,
) -> RepairPlan:
    """What to copy so that every non-empty source index is readable through the target's aliases."""
    names = frozenset(index_names)
    listed = listed_destinations(entries, names, today)
    copies = []
    for src in source_indices(names, source, target.db):
        if src.resource not in REPAIRABLE or source_counts.get(src.name, 0) == 0:
            continue
        readers = frozenset(alias_targets.get(alias_name(src.context, target.tenant, src.resource), ()))
        if listed.get(src.name) in readers:
            continue
        suffix = destination_suffix(src.resource, src.parsed.partition, merged_suffix, today)
        copies.append(
            RepairCopy(
                context=src.context,
                resource=src.resource,
                source=src.name,
                destination=index_name(src.context, target, src.resource, suffix),
                transform=TRANSFORM_OF.get(src.resource),
                source_docs=source_counts.get(src.name, 0),
            )
        )
    # Per destination, the newest source period first: with `op_type: create` the first copy of an id wins.
    copies.sort(key=lambda c: (c.destination, -_start(c.source), c.source))
    templates = sorted({template_name(c.context, target, c.resource) for c in copies})
    return RepairPlan(copies=tuple(copies), merged_suffix=merged_suffix, templates=tuple(templates))


def _start(index: str) -> int:
    parsed = parse_index_name(index)
    period = period_of(parsed.partition if parsed else None)
    return period[0].toordinal() if period else 0


def reindex_body(copy: RepairCopy) -> dict[str, Any]:
    """The `_reindex` request of one copy: never overwrite, never abort on an existing id."""
    body: dict[str, Any] = {
        "conflicts": "proceed",
        "source": {"index": copy.source, "size": 1000},
        "dest": {"index": copy.destination, "op_type": "create"},
    }
    if copy.transform is not None:
        body["script"] = {"lang": "painless", "source": PAINLESS[copy.transform]}
    return body


@dataclass(frozen=True)
class CopyOutcome:
    copy: RepairCopy
    total: int
    created: int
    conflicts: int


def outcome_of(copy: RepairCopy, task: Mapping[str, Any]) -> CopyOutcome:
    """Judge a finished `_tasks` answer: a top-level error or any per-document failure fails the repair."""
    error = task.get("error")
    response = task.get("response") if isinstance(task.get("response"), Mapping) else {}
    assert isinstance(response, Mapping)
    failures = response.get("failures") or []
    if error or failures:
        first = error if error else failures[0]
        cause = first.get("cause", first) if isinstance(first, Mapping) else first
        reason = cause.get("reason") if isinstance(cause, Mapping) else str(cause)
        raise JobError(
            Reason.REPAIR_FAILED,
            f"copy {copy.source} -> {copy.destination} failed ({len(failures) or 1} failures): {str(reason)[:200]}",
        )
    return CopyOutcome(
        copy=copy,
        total=int(response.get("total") or 0),
        created=int(response.get("created") or 0),
        conflicts=int(response.get("version_conflicts") or 0),
    )


def check_templates(es: EsClient, plan: RepairPlan) -> None:
    """0.8.2.1 must be installed in the context: its templates give the copies mapping and alias."""
    missing = []
    for name in plan.templates:
        answer = es.request("GET", f"/_index_template/{name}", ok_statuses=frozenset({404}))
        if not (isinstance(answer, Mapping) and answer.get("index_templates")):
            missing.append(name)
    if missing:
        raise JobError(
            Reason.TARGET_NOT_INSTALLED,
            f"index templates missing, install the target version first: {', '.join(missing)}",
        )


def execute_repair(es: EsClient, plan: RepairPlan, deadline: Deadline, log: Log) -> list[CopyOutcome]:
    """Run the copies one after the other, each as an asynchronous `_reindex` polled to its end."""
    check_templates(es, plan)
    outcomes = []
    for copy in plan.copies:
        log("repair.copy", source=copy.source, dest=copy.destination, transform=copy.transform)
        try:
            started = es.post("/_reindex", reindex_body(copy), wait_for_completion="false")
        except EsError as error:
            raise JobError(Reason.REPAIR_FAILED, f"_reindex {copy.source} could not start: {error.detail}") from None
        task_id = started.get("task") if isinstance(started, Mapping) else None
        if not isinstance(task_id, str):
            raise JobError(Reason.REPAIR_FAILED, f"_reindex {copy.source} returned no task")
        outcome = outcome_of(copy, _wait_task(es, task_id, deadline, copy))
        log("repair.copied", source=copy.source, created=outcome.created, conflicts=outcome.conflicts)
        outcomes.append(outcome)
    return outcomes


def _wait_task(es: EsClient, task_id: str, deadline: Deadline, copy: RepairCopy) -> Mapping[str, Any]:
    for _ in deadline.pauses(first=0.2, cap=5.0):
        try:
            task = es.get(f"/_tasks/{task_id}")
        except EsError as error:
            raise JobError(Reason.REPAIR_FAILED, f"_tasks/{task_id} for {copy.source}: {error.detail}") from None
        if isinstance(task, Mapping) and task.get("completed"):
            return task
    raise JobError(Reason.TIMEOUT, f"the copy {copy.source} -> {copy.destination} did not finish in time")


def repair_summary(outcomes: Iterable[CopyOutcome]) -> dict[str, dict[str, dict[str, int]]]:
    """Per context and resource: copies, documents read, created and already present."""
    summary: dict[str, dict[str, dict[str, int]]] = {}
    for outcome in outcomes:
        figures = summary.setdefault(outcome.copy.context.value, {}).setdefault(
            outcome.copy.resource, {"copies": 0, "total": 0, "created": 0, "present": 0}
        )
        figures["copies"] += 1
        figures["total"] += outcome.total
        figures["created"] += outcome.created
        figures["present"] += outcome.conflicts
    return summary
