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
    pinned = burst[63::64]  # every 64th kept, the last one among them: free() alone cannot shrink the heap
    del burst  # the runs of 63 free blocks between them are whole pages only malloc_trim hands back
    assert memory.give_back() is True, "the free pages between the pinned blocks are released"
    assert len(pinned) == 312


def test_the_timer_gives_back_until_cancelled_and_outlives_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def give_back() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the first one fails")
        return True

    monkeypatch.setattr(memory, "give_back", give_back)

    async def run() -> None:
        task = asyncio.create_task(memory.give_back_every(0.01))
        deadline = asyncio.get_running_loop().time() + 10
        while len(calls) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert not task.done(), "a failed call does not end the timer"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert len(calls) >= 3
