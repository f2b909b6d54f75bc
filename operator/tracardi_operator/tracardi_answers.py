"""The typed answers of Tracardi's HTTP API that the install and migration Jobs read (pure), and how
they are taken from the JSON Tracardi returns: versions, install state, the copies a migration offers,
upgrade tasks and their status. The client that asks for them is `tracardi_operator.tracardi_api`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VersionDetails:
    version: str
    tenant: str
    db_version: str
    production: bool | None
    installed: Mapping[str, Any] | None


@dataclass(frozen=True)
class InstallStatus:
    schema_ok: bool
    admin_ok: bool
    form_ok: bool | None
    warning: str | None


@dataclass(frozen=True)
class MigrationEntry:
    """One copy Tracardi offers: `copy_index` of a schema in `GET /migration/{from_db}`."""

    id: str
    from_index: str
    to_index: str
    multi: bool
    production: bool
    worker: str
    has_script: bool


@dataclass(frozen=True)
class MigrationListing:
    warn: bool
    entries: tuple[MigrationEntry, ...]


@dataclass(frozen=True)
class UpgradeTask:
    """A document of `GET /tasks/type/upgrade`; its `status` is stale by design (never updated)."""

    id: str
    task_id: str
    name: str
    timestamp: str | None
    from_index: str | None
    to_index: str | None


TASK_LISTING_LIMIT = 1000
"""Tasks asked for per listing. A listing that comes back this full may have been cut off."""


@dataclass(frozen=True)
class TaskListing:
    """One answer of `GET /tasks/type/upgrade`. `complete` only when fewer documents than the limit
    came back: a full page may hide older tasks, so nothing may be concluded from what is missing."""

    tasks: tuple[UpgradeTask, ...]
    complete: bool


@dataclass(frozen=True)
class TaskStatus:
    id: str
    status: str
    current: int | None
    total: int | None


def db_version_of(version: str, reported: object) -> str:
    """The database version: as reported, or (0.8.0 and older report none) the version without dots."""
    if isinstance(reported, str) and reported:
        return reported
    return version.replace(".", "")


def migration_entry(schema: Mapping[str, Any]) -> MigrationEntry | None:
    """One copy of a schema in `GET /migration/{from_db}`; None when it copies nothing."""
    copy = schema.get("copy_index")
    if not isinstance(copy, Mapping):
        return None
    from_index, to_index = copy.get("from_index"), copy.get("to_index")
    if not isinstance(from_index, str) or not isinstance(to_index, str):
        return None
    return MigrationEntry(
        id=str(schema.get("id") or ""),
        from_index=from_index,
        to_index=to_index,
        multi=bool(copy.get("multi")),
        production=bool(copy.get("production")),
        worker=str(schema.get("worker") or "reindex"),
        has_script=bool(copy.get("script")),
    )


def upgrade_task(item: object) -> UpgradeTask | None:
    """One document of `GET /tasks/type/upgrade`; None when it is not an object."""
    if not isinstance(item, Mapping):
        return None
    params = item.get("params")
    copy = params.get("copy_index") if isinstance(params, Mapping) else None
    copy = copy if isinstance(copy, Mapping) else {}
    from_index, to_index = copy.get("from_index"), copy.get("to_index")
    return UpgradeTask(
        id=str(item.get("id") or ""),
        task_id=str(item.get("task_id") or item.get("id") or ""),
        name=str(item.get("name") or ""),
        timestamp=str(item["timestamp"]) if item.get("timestamp") is not None else None,
        from_index=from_index if isinstance(from_index, str) else None,
        to_index=to_index if isinstance(to_index, str) else None,
    )


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
