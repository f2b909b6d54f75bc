"""One loop per key, each running its work one pass at a time (knows nothing of what the work is).

A loop runs its work in a thread of `executor` (a bounded pool: at most that many passes at once,
whatever the number of keys), then sleeps until it is woken (`wake`) or its next pass is due: the
delay the work returned, or `default_delay()` when it returned None. Work that raises is tried again
with exponential backoff (2, 4, 8 ... up to 300 seconds); work that returns `GONE` ends its loop. Every
pass first waits for `gate` (a standby replica keeps its loops but runs no work).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

Key = tuple[str, str]  # namespace, name
GONE = -1.0
"""What work returns when its object is gone or being deleted: its loop ends."""
MAX_BACKOFF = 300.0

Work = Callable[[str, str], float | None]
Observe = Callable[[float, float], None]
"""Told of every pass: seconds it waited for a worker after it was woken or due, seconds it ran."""
Retry = Callable[[str, str, int, float, Exception], None]
"""Told of a pass that raised: namespace, name, consecutive failures, the delay before the next, the error."""


def _nothing(namespace: str, name: str, failures: int, delay: float, error: Exception) -> None:
    return None


def _unobserved(waited: float, seconds: float) -> None:
    return None


@dataclass
class Scheduler:
    work: Work
    default_delay: Callable[[], float]
    gate: Callable[[], Awaitable[object]]
    on_retry: Retry = _nothing
    observe: Observe = _unobserved
    executor: Executor | None = None  # None: the event loop's default executor
    wakeups: dict[Key, asyncio.Event] = field(default_factory=dict)
    _loops: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    _woken_at: dict[Key, float] = field(default_factory=dict)

    def wake(self, namespace: str, name: str) -> None:
        event = self.wakeups.get((namespace, name))
        if event is not None:
            if not event.is_set():
                self._woken_at[(namespace, name)] = time.monotonic()
            event.set()

    def ensure_loop(self, namespace: str, name: str) -> None:
        """One loop per key, started on its first event."""
        key = (namespace, name)
        task = self._loops.get(key)
        if task is None or task.done():
            self._loops[key] = asyncio.get_running_loop().create_task(self._loop(namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        task = self._loops.pop((namespace, name), None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._loops.values())
        self._loops.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _timed(self, namespace: str, name: str, due: float) -> float | None:
        started = time.monotonic()
        try:
            return self.work(namespace, name)
        finally:
            self.observe(started - due, time.monotonic() - started)

    async def _loop(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        wake = self.wakeups.setdefault(key, asyncio.Event())
        failures = 0
        try:
            while True:
                await self.gate()
                wake.clear()
                due = self._woken_at.pop(key, None) or time.monotonic()  # woken by an event, or due now
                try:
                    delay = await asyncio.get_running_loop().run_in_executor(
                        self.executor, self._timed, namespace, name, due)
                    if delay == GONE:
                        return
                    failures = 0
                except Exception as e:
                    failures += 1
                    delay = min(MAX_BACKOFF, 2.0 ** min(failures, 8))
                    self.on_retry(namespace, name, failures, delay, e)
                if delay is None:
                    delay = self.default_delay()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)
        finally:
            self.wakeups.pop(key, None)
            self._woken_at.pop(key, None)
            if self._loops.get(key) is asyncio.current_task():
                self._loops.pop(key, None)
