"""What one pass of the rollout accumulates (pure): the `Decision` handed to the handler, the
`RolloutContext` it is taken in, and the `Draft` that every step writes conditions, Events and
manifests into. Also the condition types the rollout sets and two readings of the status every step
needs (the Current version record; whether the upgrade runs Offline)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator import builders, conditions
from tracardi_operator.models import TracardiInstallation, TracardiInstallationStatus, VersionRecord

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
class RolloutContext:
    now: dt.datetime
    builder: builders.BuilderSettings
    api_addressing: str = "pod"
    retry: str | None = None
    """The value of the tracardi.com/retry annotation."""
    shards_available: int | None = None
    """Room for new shards in the Elasticsearch cluster, when it was read (before a version change)."""


class Draft:
    """Accumulates one decision: the status being rewritten, and what to do."""

    def __init__(self, inst: TracardiInstallation, ctx: RolloutContext) -> None:
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


def current_record(status: TracardiInstallationStatus) -> VersionRecord | None:
    return next((r for r in reversed(status.versions) if r.state == "Current"), None)


def is_offline(s: Draft) -> bool:
    return s.inst.spec.upgrade.strategy == "Offline"
