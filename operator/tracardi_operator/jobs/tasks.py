"""Tracardi's upgrade tasks as the migration Job reads them: which task is the copy of which listed
entry, from a listing proven complete (a task not seen is never taken for a copy not started), and
Tracardi API errors turned into the Job's failure reasons."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tracardi_operator.jobs.common import JobError
from tracardi_operator.reasons import Reason
from tracardi_operator.tracardi_api import (
    TASK_LISTING_LIMIT,
    MigrationEntry,
    TracardiApi,
    TracardiApiError,
    UpgradeTask,
)

FAILED_STATES = frozenset({"FAILURE", "REVOKED"})
"""The states of a task that ended without its copy."""
ORCHESTRATOR_NAME = "Migration plan orchestrator"
"""The task document Tracardi writes for a POST /migration, before its worker writes the copies'."""


def match_tasks(entries: Sequence[MigrationEntry], tasks: Sequence[UpgradeTask]) -> dict[str, UpgradeTask]:
    """from_index → the newest copy task of that entry (`tasks` come newest first, as Tracardi lists)."""
    matched: dict[str, UpgradeTask] = {}
    for entry in entries:
        for task in tasks:
            same_params = task.from_index == entry.from_index and task.to_index in (None, entry.to_index)
            named = task.from_index is None and f'"{entry.from_index}"' in task.name
            if same_params or named:
                matched[entry.from_index] = task
                break
    return matched


def copy_task_name(entry: MigrationEntry) -> str:
    """The name Tracardi gives the task of one copy (it may append ` to "<to_index>"`)."""
    return f'Migration of "{entry.from_index}"'


def list_copy_tasks(api: TracardiApi, entries: Sequence[MigrationEntry], context: str) -> list[UpgradeTask]:
    """Every upgrade task that may be a copy of `entries`, newest first, from a listing proven complete.

    Tracardi lists 50 tasks unless told otherwise, so one listing with a generous `limit` is asked
    first. Should even that come back full, each entry's tasks are asked for by name; if one of
    those is full too, the Job stops (TaskListingIncomplete): a task not seen is never taken for a
    copy not started, because posting its id again would copy the data twice.
    """
    with api_errors("GET /tasks/type/upgrade"):
        listing = api.upgrade_tasks(context, limit=TASK_LISTING_LIMIT)
    if listing.complete:
        return list(listing.tasks)
    tasks: list[UpgradeTask] = []
    for entry in entries:
        name = copy_task_name(entry)
        with api_errors("GET /tasks/type/upgrade"):
            page = api.upgrade_tasks(context, limit=TASK_LISTING_LIMIT, query=name)
        if not page.complete:
            raise JobError(
                Reason.TASK_LISTING_INCOMPLETE,
                f"Tracardi lists more than {TASK_LISTING_LIMIT} upgrade tasks named {name} in {context}; "
                "which copies already ran cannot be proven, so none is started again",
            )
        tasks.extend(task for task in page.tasks if match_tasks([entry], [task]))
    return tasks


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Turn a Tracardi API error inside the block into a JobError naming the call."""
    try:
        yield
    except TracardiApiError as error:
        reason = Reason.API_UNREACHABLE if error.status is None else Reason.API_ERROR
        raise JobError(reason, f"{what}: {error.status}: {error.detail}") from None
