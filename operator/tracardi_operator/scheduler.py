"""One loop per key, each running its work one pass at a time (knows nothing of what the work is).

A loop runs its work in a thread of `executor`, at most `workers` passes at once whatever the number of
keys, then sleeps until it is woken (`wake`) or its next pass is due: the delay the work returned, or
`default_delay()` when it returned None. Work that raises is tried again with exponential backoff
(2, 4, 8 ... up to 300 seconds); work that returns `GONE` ends its loop. Every pass first waits for
`gate` (a standby replica keeps its loops but runs no work).

When more passes are due than there are workers, a free worker goes to the waiting pass with the
earliest deadline: the time it fell due plus the latency its urgency allows (`Urgency`, `LATENCY`). A pass
for a change of the key's own object, or one its previous pass asked for at once, is due at once; a pass
woken by another event may wait up to 30 s for those, and a periodic pass or a retry up to a minute. So a
version bump in a busy fleet is acted on ahead of the rollouts of earlier bumps (a fleet bump by one
`kubectl apply` arrives over some seconds, and each bumped installation's pass must not wait behind the
passes its predecessors' rolling Deployments wake), and no pass waits for ever behind a stream of more
urgent ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import IntEnum

Key = tuple[str, str]  # namespace, name
GONE = -1.0
"""What work returns when its object is gone or being deleted: its loop ends."""
MAX_BACKOFF = 300.0
SOON = 5.0
"""A delay the work returned of at most this many seconds: its step wants the next pass at once."""


class Urgency(IntEnum):
    """Why a pass is due, most urgent first."""

    CHANGE = 0
    """The key's own object changed (someone edited it), or the previous pass asked for the next soon."""
    EVENT = 1
    """Something it owns or depends on changed, or the first pass of its loop."""
    RESYNC = 2
    """The periodic pass, or a retry after a failure."""


LATENCY: dict[Urgency, float] = {Urgency.CHANGE: 0.0, Urgency.EVENT: 30.0, Urgency.RESYNC: 60.0}
"""Seconds a pass of each urgency may wait for more urgent ones once due: its deadline is due + this."""

Work = Callable[[str, str], float | None]
Observe = Callable[[Urgency, float, float], None]
"""Told of every pass: why it was due, seconds it waited for a worker after it was due, seconds it ran."""
Retry = Callable[[str, str, int, float, Exception], None]
"""Told of a pass that raised: namespace, name, consecutive failures, the delay before the next, the error."""


def _nothing(namespace: str, name: str, failures: int, delay: float, error: Exception) -> None:
    return None


def _unobserved(urgency: Urgency, waited: float, seconds: float) -> None:
    return None


def when_due(delay: float | None, failures: int) -> Urgency:
    """How urgent the next pass is when it falls due by itself (no event woke it first)."""
    if failures or delay is None:
        return Urgency.RESYNC  # a retry, or the periodic pass
    return Urgency.CHANGE if delay <= SOON else Urgency.EVENT  # a step asked for it (soon: at once)


@dataclass(order=True)
class _Waiter:
    deadline: float
    order: int
    future: asyncio.Future[None] = field(compare=False)
    key: object = field(compare=False)


@dataclass
class Workers:
    """`size` slots, handed to waiters by deadline (earliest first), then in the order they asked."""

    size: int
    _busy: int = 0
    _waiting: list[_Waiter] = field(default_factory=list)
    """A heap: earliest deadline first, then the order they asked."""
    _queued: dict[object, _Waiter] = field(default_factory=dict)
    """The waiting entry of each key."""
    _order: itertools.count[int] = field(default_factory=itertools.count)

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float, key: object = None) -> AsyncIterator[None]:
        if self._busy < self.size and not self._waiting:
            self._busy += 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = _Waiter(deadline, next(self._order), future, key)
            heapq.heappush(self._waiting, entry)
            if key is not None:
                self._queued[key] = entry
            try:
                await future  # the releasing holder counted this slot as ours
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # handed over as we were cancelled: pass it on
                else:
                    self._waiting = [w for w in self._waiting if w.future is not future]
                    heapq.heapify(self._waiting)
                raise
            finally:
                if key is not None and self._queued.get(key) is entry:
                    del self._queued[key]
        try:
            yield
        finally:
            self._release()

    def hurry(self, key: object, deadline: float) -> None:
        """Bring a waiting key's deadline forward (a more urgent wake arrived while it waited)."""
        entry = self._queued.get(key)
        if entry is not None and deadline < entry.deadline:
            entry.deadline = deadline
            heapq.heapify(self._waiting)

    def _release(self) -> None:
        while self._waiting:
            future = heapq.heappop(self._waiting).future
            if not future.done():
                future.set_result(None)  # the slot passes to it: _busy is unchanged
                return
        self._busy -= 1

    @property
    def waiting(self) -> int:
        return len(self._waiting)


@dataclass
class Scheduler:
    work: Work
    default_delay: Callable[[], float]
    gate: Callable[[], Awaitable[object]]
    workers: int = 8
    on_retry: Retry = _nothing
    observe: Observe = _unobserved
    executor: Executor | None = None  # None: the event loop's default executor (give it `workers` threads)
    clock: Callable[[], float] = time.monotonic
    wakeups: dict[Key, asyncio.Event] = field(default_factory=dict)
    _loops: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    _woken: dict[Key, tuple[float, Urgency]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._slots = Workers(self.workers)

    def wake(self, namespace: str, name: str, urgency: Urgency = Urgency.EVENT) -> None:
        """Make the key's next pass due now (a key without a loop is ignored). Several wakes before the
        pass runs make one pass, as urgent as the most urgent of them, timed from the first; a pass
        already waiting for a worker moves up when a wake is more urgent than what made it due."""
        key = (namespace, name)
        event = self.wakeups.get(key)
        if event is None:
            return
        now = self.clock()
        since, was = self._woken.get(key, (now, urgency))
        self._woken[key] = (since, min(was, urgency))
        self._slots.hurry(key, now + LATENCY[urgency])
        event.set()

    def ensure_loop(self, namespace: str, name: str) -> None:
        """One loop per key, started on its first event."""
        key = (namespace, name)
        task = self._loops.get(key)
        if task is None or task.done():
            self.wakeups.setdefault(key, asyncio.Event())  # so that a wake right after this counts
            # A context of its own: the loop is started from a watch handler, whose context holds the
            # event's whole object (kopf's context variables); a copy of it would keep that for the
            # loop's lifetime, one installation's first body each.
            self._loops[key] = asyncio.get_running_loop().create_task(self._loop(namespace, name),
                                                                      context=contextvars.Context())

    def forget(self, namespace: str, name: str) -> None:
        self.wakeups.pop((namespace, name), None)  # a loop cancelled before it ran cleans up nothing
        self._woken.pop((namespace, name), None)
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

    def pending(self, namespace: str, name: str) -> Urgency | None:
        """How urgent the key's woken pass is, None when no wake waits for a pass to read it."""
        found = self._woken.get((namespace, name))
        return found[1] if found is not None else None

    @property
    def waiting(self) -> int:
        """Passes due and waiting for a worker."""
        return self._slots.waiting

    def _timed(self, namespace: str, name: str, urgency: Urgency, due: float) -> float | None:
        started = self.clock()
        try:
            return self.work(namespace, name)
        finally:
            self.observe(urgency, started - due, self.clock() - started)

    async def _loop(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        wake = self.wakeups.setdefault(key, asyncio.Event())
        failures = 0
        due_by = (self.clock(), Urgency.EVENT)  # the first pass: due now
        try:
            while True:
                await self.gate()
                wake.clear()
                due, urgency = self._woken.pop(key, due_by)
                async with self._slots.slot(due + LATENCY[urgency], key):
                    wake.clear()  # what woke it while it waited for a worker, this pass reads
                    self._woken.pop(key, None)
                    try:
                        delay = await asyncio.get_running_loop().run_in_executor(
                            self.executor, self._timed, namespace, name, urgency, due)
                        if delay == GONE:
                            return
                        failures = 0
                    except Exception as e:
                        failures += 1
                        delay = min(MAX_BACKOFF, 2.0 ** min(failures, 8))
                        self.on_retry(namespace, name, failures, delay, e)
                urgency = when_due(delay, failures)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.default_delay() if delay is None else delay)
                due_by = (self.clock(), urgency)  # unless an event woke it first (`_woken`)
        finally:
            if self.wakeups.get(key) is wake:  # not a later loop's, after forget and ensure_loop
                self.wakeups.pop(key, None)
                self._woken.pop(key, None)
            if self._loops.get(key) is asyncio.current_task():
                self._loops.pop(key, None)
