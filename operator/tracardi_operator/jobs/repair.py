"""Repair of what Tracardi 0.8.2's own 08x→0820 migration skips or mislays (migration-transforms §5).

What lives here: `plan_repair` (pure: which source index to copy where, with which transform) and
`execute_repair` (I/O: one `_reindex` per copy, `op_type: create` and `conflicts: proceed`, so a rerun
neither duplicates nor overwrites anything, then the task's outcome checked for failures).

Destinations are the layout 0.8.2.1 reads through its aliases:
- event, profile: every source partition into ONE partition `<merged suffix>` per context; the suffix is
  decided once by the operator and passed in, so a retry in another quarter cannot split ids in two;
- session, log, user-log, item: the same `-YYYY-M` suffix as the source;
- entity: the current quarter (`-YYYY-qN`); console-log: the current month (`-YYYY-M`).
Every such name matches the 0.8.2.1 template pattern `<prefix>.tracardi-<resource>-*-*`, so the
index is created from the template: strict mapping, `_meta.version` 0820 and the read alias.
A source is left alone when Tracardi listed it and its destination is readable, or when it is empty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tracardi_operator.indices import Context, VersionId
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
from tracardi_operator.tracardi_api import MigrationEntry

REPAIR_TARGET_DB = "0820"

MERGED = "merged"
SAME_SUFFIX = "same"
CURRENT_QUARTER = "quarter"
CURRENT_MONTH = "month"

# resource → how its destination partition is named in 0.8.2.1
REPAIRABLE: Mapping[str, str] = {
    "event": MERGED,
    "profile": MERGED,
    "session": SAME_SUFFIX,
    "log": SAME_SUFFIX,
    "user-log": SAME_SUFFIX,
    "item": SAME_SUFFIX,
    "entity": CURRENT_QUARTER,
    "console-log": CURRENT_MONTH,
}
TRANSFORM_OF: Mapping[str, str] = {"event": "event", "profile": "profile", "entity": "entity"}


def repair_applies(target_db: str) -> bool:
    return target_db == REPAIR_TARGET_DB


def quarter_suffix(day: dt.date) -> str:
    """The correct quarter partition suffix (`2026-q4`), not Tracardi's `(month % 4) + 1`."""
    return f"{day.year}-q{(day.month - 1) // 3 + 1}"


def month_suffix(day: dt.date) -> str:
    return f"{day.year}-{day.month}"


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
        rule = REPAIRABLE.get(src.resource)
        if rule is None or source_counts.get(src.name, 0) == 0:
            continue
        readers = frozenset(alias_targets.get(alias_name(src.context, target.tenant, src.resource), ()))
        if listed.get(src.name) in readers:
            continue
        partition = src.parsed.partition
        if rule == MERGED:
            suffix = merged_suffix
        elif rule == SAME_SUFFIX and partition is not None:
            suffix = partition
        elif rule == CURRENT_QUARTER:
            suffix = quarter_suffix(today)
        else:
            suffix = month_suffix(today)
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
    templates = sorted({template_name(c.context, target, c.resource) for c in copies})
    return RepairPlan(copies=tuple(copies), merged_suffix=merged_suffix, templates=tuple(templates))


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
            "RepairFailed",
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
            "TargetNotInstalled",
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
            raise JobError("RepairFailed", f"_reindex {copy.source} could not start: {error.detail}") from None
        task_id = started.get("task") if isinstance(started, Mapping) else None
        if not isinstance(task_id, str):
            raise JobError("RepairFailed", f"_reindex {copy.source} returned no task")
        outcome = outcome_of(copy, _wait_task(es, task_id, deadline, copy))
        log("repair.copied", source=copy.source, created=outcome.created, conflicts=outcome.conflicts)
        outcomes.append(outcome)
    return outcomes


def _wait_task(es: EsClient, task_id: str, deadline: Deadline, copy: RepairCopy) -> Mapping[str, Any]:
    for _ in deadline.pauses(first=0.2, cap=5.0):
        try:
            task = es.get(f"/_tasks/{task_id}")
        except EsError as error:
            raise JobError("RepairFailed", f"_tasks/{task_id} for {copy.source}: {error.detail}") from None
        if isinstance(task, Mapping) and task.get("completed"):
            return task
    raise JobError("Timeout", f"the copy {copy.source} -> {copy.destination} did not finish in time")


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
