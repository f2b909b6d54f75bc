"""What a pass's status change tells the metrics: the upgrade step that just ended and how long it ran,
and the migration Jobs that just finished. No I/O; the reconcile pass reports what these return.

Step durations are timed by this process: a step already under way when the operator (or a new leader)
starts is timed from then, so its first duration can be short. Nothing of this is written to status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tracardi_operator.metrics import MigrationResult
from tracardi_operator.models import TracardiInstallationStatus

Key = tuple[str, str]  # namespace, installation name
_StepId = tuple[str, str, str, str]  # change started at, kind, target version, step


def _step_id(status: TracardiInstallationStatus) -> _StepId | None:
    up = status.upgrade
    if up is None or up.step == "Completed":
        return None
    started = up.started_at.isoformat() if up.started_at else ""
    return (started, up.kind, up.to_version, up.step)


@dataclass
class StepClock:
    """When each installation's current upgrade step was first seen, to time it when it ends."""

    clock: Callable[[], float] = time.monotonic
    _current: dict[Key, tuple[_StepId, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, key: Key, status: TracardiInstallationStatus) -> tuple[str, float] | None:
        """The status a pass decided; (the step that ended, its seconds) when the step changed."""
        now, step = self.clock(), _step_id(status)
        with self._lock:
            previous = self._current.get(key)
            if previous is not None and previous[0] == step:
                return None
            if step is None:
                self._current.pop(key, None)
            else:
                self._current[key] = (step, now)
        if previous is None:
            return None
        return previous[0][3], now - previous[1]

    def forget(self, key: Key) -> None:
        with self._lock:
            self._current.pop(key, None)


def finished_migrations(old: TracardiInstallationStatus, new: TracardiInstallationStatus) -> list[MigrationResult]:
    """The migration Jobs whose outcome became Succeeded or Failed between the status as read and as
    decided (each Job counted once: the next pass reads the outcome already written)."""
    before = {j.name: j.outcome for j in (old.upgrade.jobs if old.upgrade else [])}
    results: list[MigrationResult] = []
    for job in new.upgrade.jobs if new.upgrade else []:
        if job.purpose != "Migrate" or before.get(job.name) == job.outcome:
            continue
        if job.outcome == "Succeeded":
            results.append("succeeded")
        elif job.outcome == "Failed":
            results.append("failed")
    return results
