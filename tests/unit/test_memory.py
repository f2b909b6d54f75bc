"""Free pages handed back to the system (`memory`): found in this machine's C library, and harmless to call."""

from __future__ import annotations

import asyncio
import platform

import pytest

from tracardi_operator import memory

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; elsewhere give_back does nothing")
def test_glibc_gives_back_the_pages_freed_by_a_burst() -> None:
    assert memory._malloc_trim() is not None, "glibc has malloc_trim"
    burst = [bytes(4096) for _ in range(20_000)]  # 80 MiB in blocks malloc serves from its heap, not mmap
    pinned = bytes(4096)  # allocated after them: free() alone cannot shrink the heap below it
    del burst
    assert memory.give_back() is True, "the free pages below the pinned block are released"
    assert pinned


def test_the_timer_gives_back_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracardi_operator.runtime import Runtime

    calls: list[bool] = []
    monkeypatch.setattr(memory, "give_back", lambda: calls.append(True) or True)

    async def run() -> None:
        task = asyncio.create_task(Runtime.give_back_memory(None, every=0.01))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert len(calls) >= 3
