"""What the install and migration Jobs report back: the typed half of the Job → operator contract.

The way in is `builders` (the ARG_* and ENV_* names); the way out is the JSON a Job writes as its
termination message (`jobs.common.finish`), read back by `observe` and `rollout`. Both sides use the
models here: the Jobs dump them, the operator parses them, so a key renamed on one side is a type
error on the other, not a silent `.get()` that returns None. Pure: no I/O.

A termination message is at most 4 KiB; when a result does not fit, `jobs.common.compact` keeps
only `error`, `message`, `from` and `to`, so every other field has a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel


class _Result(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def dump(self) -> dict[str, Any]:
        """The JSON object a Job writes (camelCase keys, no empty fields)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class InstallResult(_Result):
    """The install Job's success: what the new version's API reported once installed."""

    version: str | None = None
    db_version: str | None = None
    tenant: str | None = None
    schema_ok: bool = False
    admin_ok: bool = False
    form_ok: bool | None = None


class ContextFigures(_Result):
    """Verification totals of one context (staging or production)."""

    resources: int = 0
    source_docs: int = 0
    dest_docs: int = 0
    collapsed_ids: int = 0
    """One id found in several merged source partitions, counted once in the destination."""
    deleted_since_cutoff: int = 0
    """Ids gone from the source after the cutoff: deleted by live traffic, not lost."""


class RepairFigures(_Result):
    """What the repair copied of one resource in one context."""

    copies: int = 0
    total: int = 0
    created: int = 0
    present: int = 0


class MigrationResult(_Result):
    """The migration Job's success: the verified figures per context, and what repair copied."""

    from_db: str | None = Field(default=None, alias="from")
    to_db: str | None = Field(default=None, alias="to")
    contexts: dict[str, ContextFigures] = Field(default_factory=dict)
    repaired: dict[str, dict[str, RepairFigures]] = Field(default_factory=dict)
    merged_suffix: str | None = None

    def dump(self) -> dict[str, Any]:
        payload = super().dump()
        if not self.repaired:
            payload.pop("repaired", None)
        return payload


class JobFailure(_Result):
    """Any Job's failure: a stable CamelCase reason and what a person can do."""

    error: str
    message: str = ""


def parse_install(result: Mapping[str, Any] | None) -> InstallResult | None:
    return _parse(InstallResult, result)


def parse_migration(result: Mapping[str, Any] | None) -> MigrationResult | None:
    return _parse(MigrationResult, result)


def parse_failure(result: Mapping[str, Any] | None) -> JobFailure | None:
    return _parse(JobFailure, result)


M = TypeVar("M", bound=_Result)


def _parse(model: type[M], result: Mapping[str, Any] | None) -> M | None:
    """The result as `model`, or None when there is none or it does not have that shape."""
    if not result:
        return None
    try:
        return model.model_validate(result)
    except ValidationError:
        return None
