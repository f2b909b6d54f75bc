"""The scheduler's bounded pool: however many installations have loops, at most `workers` passes run
at once, every installation still gets its pass, and when passes queue the most urgent go first."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tracardi_operator.scheduler import GONE, LATENCY, SOON, Scheduler, Urgency, Workers, when_due
from tracardi_operator.settings import Settings


async def _open() -> None:
    return None


async def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _scheduler(work: Any, workers: int, **kwargs: Any) -> Scheduler:
    return Scheduler(work=work, default_delay=lambda: 60.0, gate=_open, workers=workers,
                     executor=ThreadPoolExecutor(max_workers=workers), **kwargs)


def _run_keys(work: Any, workers: int, keys: int, done: Callable[[], bool], **kwargs: Any) -> None:
    """Start a loop for each of `keys` keys and run until `done()` (or 10 s)."""
    async def main() -> None:
        scheduler = _scheduler(work, workers, **kwargs)
        for i in range(keys):
            scheduler.ensure_loop("fleet", f"t{i}")
        await _until(done)
        await scheduler.stop()

    asyncio.run(main())


def test_at_most_workers_passes_run_at_once_and_every_key_gets_its_pass() -> None:
    lock = threading.Lock()
    running = peak = 0
    done: set[str] = set()

    def work(namespace: str, name: str) -> float:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
            done.add(name)
        return GONE  # one pass each, then the loop ends

    _run_keys(work, workers=3, keys=40, done=lambda: len(done) == 40)
    assert len(done) == 40
    assert peak == 3


def test_workers_setting() -> None:
    assert Settings.from_env({}).workers == 8
    assert Settings.from_env({"TRACARDI_OPERATOR_WORKERS": "32"}).workers == 32
    for bad in ("0", "65", "many", "-1"):
        with pytest.raises(ValueError, match="TRACARDI_OPERATOR_WORKERS"):
            Settings.from_env({"TRACARDI_OPERATOR_WORKERS": bad})


def test_every_pass_is_observed_with_its_urgency_its_wait_for_a_worker_and_its_run_time() -> None:
    observed: list[tuple[Urgency, float, float]] = []

    def work(namespace: str, name: str) -> float:
        time.sleep(0.05)
        return GONE

    _run_keys(work, workers=1, keys=3, done=lambda: len(observed) == 3,
              observe=lambda urgency, waited, seconds: observed.append((urgency, waited, seconds)))
    assert len(observed) == 3
    assert {u for u, _, _ in observed} == {Urgency.EVENT}, "a loop's first pass is due as an event"
    assert all(seconds >= 0.05 for _, _, seconds in observed)
    waits = sorted(waited for _, waited, _ in observed)
    assert waits[2] >= 0.1, "the third waited for the two before it on the single worker"
    assert waits[0] < waits[2] - 0.05, "the first found the worker free"


def test_a_free_worker_goes_to_the_earliest_deadline_so_urgency_orders_but_never_starves() -> None:
    order: list[str] = []
    now = time.monotonic()

    async def main() -> None:
        workers = Workers(1)
        hold = asyncio.Event()

        async def take(name: str, deadline: float) -> None:
            async with workers.slot(deadline):
                order.append(name)
                await hold.wait()

        first = asyncio.create_task(take("holder", now))
        await asyncio.sleep(0)
        waiters = [asyncio.create_task(take(name, due + LATENCY[urgency])) for name, due, urgency in (
            ("resync", now, Urgency.RESYNC), ("event-1", now, Urgency.EVENT), ("change", now, Urgency.CHANGE),
            ("event-2", now, Urgency.EVENT), ("event due long ago", now - LATENCY[Urgency.EVENT] - 5, Urgency.EVENT))]
        await asyncio.sleep(0.01)
        assert workers.waiting == 5
        hold.set()
        await asyncio.gather(first, *waiters)

    asyncio.run(main())
    assert order == ["holder", "event due long ago", "change", "event-1", "event-2", "resync"]


def test_a_waiter_cancelled_in_the_queue_keeps_no_worker() -> None:
    async def main() -> None:
        workers = Workers(1)
        hold = asyncio.Event()

        async def take() -> None:
            async with workers.slot(time.monotonic()):
                await hold.wait()

        holder = asyncio.create_task(take())
        await asyncio.sleep(0)
        cancelled = asyncio.create_task(take())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        hold.set()
        await holder
        later = asyncio.create_task(take())
        await asyncio.wait_for(later, timeout=1)  # the worker is free again: it runs at once
        assert workers.waiting == 0

    asyncio.run(main())


def _recording(ran: list[str], release: threading.Event) -> Callable[[str, str], float | None]:
    """Work that records each pass; the pass of "busy" holds its worker until `release` is set."""
    def work(namespace: str, name: str) -> float | None:
        ran.append(name)
        if name == "busy":
            release.wait(5)
        return None
    return work


def test_an_edited_installation_runs_before_those_its_children_woke() -> None:
    """One worker, busy; five installations woken by child events, then one edited: the edited one is
    next. Wakes that arrive while an installation waits for a worker make one pass, not several."""
    ran: list[str] = []
    release = threading.Event()

    async def main() -> None:
        scheduler = _scheduler(_recording(ran, release), workers=1)
        names = ["busy"] + [f"child-{i}" for i in range(5)] + ["edited"]
        release.set()  # the first passes run through
        for name in names:
            scheduler.ensure_loop("fleet", name)
        await _until(lambda: len(ran) == len(names))
        del ran[:]
        release.clear()
        scheduler.wake("fleet", "busy")
        await _until(lambda: ran == ["busy"])
        for i in range(5):
            for _ in range(3):
                scheduler.wake("fleet", f"child-{i}", Urgency.EVENT)
        scheduler.wake("fleet", "edited", Urgency.CHANGE)
        await asyncio.sleep(0.05)
        release.set()
        await _until(lambda: len(ran) == 7)
        await asyncio.sleep(0.1)
        await scheduler.stop()

    asyncio.run(main())
    assert ran[:2] == ["busy", "edited"]
    assert sorted(ran[2:]) == [f"child-{i}" for i in range(5)], "three wakes each made one pass"


def test_a_pass_asked_for_soon_is_as_urgent_as_an_edit_and_the_resync_is_least() -> None:
    assert when_due(0.1, failures=0) is Urgency.CHANGE, "a step asked for its next pass at once"
    assert when_due(SOON + 1, failures=0) is Urgency.EVENT, "a step waits for something, not the resync"
    assert when_due(None, failures=0) is Urgency.RESYNC, "the periodic pass"
    assert when_due(2.0, failures=1) is Urgency.RESYNC, "a retry after a failure"

    records: list[Urgency] = []

    def work(namespace: str, name: str) -> float | None:
        return 0.05 if name == "step" else None

    async def main() -> None:
        scheduler = Scheduler(work=work, default_delay=lambda: 0.05, gate=_open, workers=2,
                              observe=lambda urgency, waited, seconds: records.append(urgency),
                              executor=ThreadPoolExecutor(max_workers=2))
        for name in ("step", "idle"):
            scheduler.ensure_loop("fleet", name)
        await _until(lambda: len(records) >= 10)
        await scheduler.stop()

    asyncio.run(main())
    assert records.count(Urgency.EVENT) == 2, "each loop's first pass"
    assert Urgency.CHANGE in records, "the step's 0.05 s requeue"
    assert Urgency.RESYNC in records, "the idle one's periodic pass"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _Held:
    """One worker, held by the pass of "busy" until `release` is set; a clock the test moves."""

    scheduler: Scheduler
    clock: _Clock
    release: threading.Event
    ran: list[str]


@contextlib.asynccontextmanager
async def _held_worker() -> AsyncIterator[_Held]:
    ran: list[str] = []
    release = threading.Event()
    clock = _Clock()
    scheduler = _scheduler(_recording(ran, release), workers=1, clock=clock)
    scheduler.ensure_loop("fleet", "busy")
    await _until(lambda: ran == ["busy"])
    try:
        yield _Held(scheduler, clock, release, ran)
    finally:
        release.set()
        await scheduler.stop()


def test_the_loops_hand_the_worker_over_by_deadline_not_by_urgency_alone() -> None:
    """Through the loops themselves, on a clock the test moves: an event pass due longer ago than an
    event's latency (deadline 0 + L) goes ahead of a fresh edit (L + 5 + 0), which goes ahead of an event
    due now (L + 5 + L). Strict urgency order would run the edit first; first come first served the late
    event before it."""

    async def main() -> list[str]:
        async with _held_worker() as held:
            scheduler = held.scheduler
            scheduler.ensure_loop("fleet", "old-event")
            await _until(lambda: scheduler.waiting == 1)
            held.clock.now = LATENCY[Urgency.EVENT] + 5.0
            scheduler.ensure_loop("fleet", "late-event")
            await _until(lambda: scheduler.waiting == 2)
            scheduler.ensure_loop("fleet", "edited")
            scheduler.wake("fleet", "edited", Urgency.CHANGE)
            await _until(lambda: scheduler.waiting == 3)
            held.release.set()
            await _until(lambda: len(held.ran) == 4)
        return held.ran

    assert asyncio.run(main()) == ["busy", "old-event", "edited", "late-event"]


def test_a_pass_waiting_for_a_worker_moves_up_when_its_object_is_edited() -> None:
    """Two passes queued as events; the second's installation is then edited: it goes first, once."""

    async def main() -> list[str]:
        async with _held_worker() as held:
            scheduler = held.scheduler
            scheduler.ensure_loop("fleet", "a")
            scheduler.ensure_loop("fleet", "b")
            await _until(lambda: scheduler.waiting == 2)
            held.clock.now = 1.0
            scheduler.wake("fleet", "b", Urgency.CHANGE)
            scheduler.wake("fleet", "a", Urgency.RESYNC)  # less urgent than what made it due: no change
            held.release.set()
            await _until(lambda: len(held.ran) == 3)
            await asyncio.sleep(0.1)
        return held.ran

    assert asyncio.run(main()) == ["busy", "b", "a"], "the edit moved b up, and each made one pass"


def test_a_loop_keeps_nothing_of_the_context_it_was_started_from() -> None:
    """Loops start from watch handlers, whose context variables hold the event's whole object: a loop
    that copied that context would keep one installation's first body for as long as it runs."""
    import contextvars

    event_body: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("event_body", default=None)
    seen: list[dict[str, Any] | None] = []

    async def gate() -> None:
        seen.append(event_body.get())

    async def main() -> None:
        scheduler = Scheduler(work=lambda namespace, name: GONE, default_delay=lambda: 60.0, gate=gate, workers=1,
                              executor=ThreadPoolExecutor(max_workers=1))
        event_body.set({"metadata": {"name": "acme", "managedFields": ["large"]}})
        scheduler.ensure_loop("shop", "acme")
        await _until(lambda: bool(seen))
        await scheduler.stop()

    asyncio.run(main())
    assert seen == [None]
