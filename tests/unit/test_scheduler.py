"""The scheduler's bounded pool: however many installations have loops, at most `workers` passes run
at once, and every installation still gets its pass."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tracardi_operator.scheduler import GONE, Scheduler
from tracardi_operator.settings import Settings


async def _open() -> None:
    return None


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

    async def main() -> None:
        scheduler = Scheduler(work=work, default_delay=lambda: 60.0, gate=_open,
                              executor=ThreadPoolExecutor(max_workers=3))
        for i in range(40):
            scheduler.ensure_loop("fleet", f"t{i}")
        deadline = time.monotonic() + 10
        while len(done) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await scheduler.stop()

    asyncio.run(main())
    assert len(done) == 40
    assert peak == 3


def test_workers_setting() -> None:
    assert Settings.from_env({}).workers == 8
    assert Settings.from_env({"TRACARDI_OPERATOR_WORKERS": "32"}).workers == 32
    for bad in ("0", "65", "many", "-1"):
        with pytest.raises(ValueError, match="TRACARDI_OPERATOR_WORKERS"):
            Settings.from_env({"TRACARDI_OPERATOR_WORKERS": bad})


def test_every_pass_is_observed_with_its_wait_for_a_worker_and_its_run_time() -> None:
    observed: list[tuple[float, float]] = []

    def work(namespace: str, name: str) -> float:
        time.sleep(0.05)
        return GONE

    async def main() -> None:
        scheduler = Scheduler(work=work, default_delay=lambda: 60.0, gate=_open,
                              executor=ThreadPoolExecutor(max_workers=1),
                              observe=lambda waited, seconds: observed.append((waited, seconds)))
        for i in range(3):
            scheduler.ensure_loop("fleet", f"t{i}")
        deadline = time.monotonic() + 10
        while len(observed) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await scheduler.stop()

    asyncio.run(main())
    assert len(observed) == 3
    assert all(seconds >= 0.05 for _, seconds in observed)
    waits = sorted(waited for waited, _ in observed)
    assert waits[0] < 0.05, "the first pass found the worker free"
    assert waits[2] >= 0.1, "the third waited for the two before it on the single worker"
