"""Memory the C allocator holds after a busy stretch, given back to the system.

A fleet's first passes after a start (every installation read, decided and applied within seconds),
and a fleet bump, allocate at once what an idle operator never needs again. Python frees those
objects, but glibc's allocator keeps most of the pages it got for them, spread over the arenas of the
worker threads, and the process stays at its peak. `malloc_trim(0)` hands back every whole free page
of every arena. It costs milliseconds on a heap of a few hundred MiB, so `give_back` runs it on a
timer off the event loop (`give_back_every`); with a C library that has no such call (musl)
it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_SECONDS = 60.0
"""How often the free pages are given back."""


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the symbols the process has loaded, its C library's among them
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def give_back() -> bool:
    """Release the allocator's free pages; whether the C library could (glibc) and any were released."""
    trim = _malloc_trim()
    return trim is not None and bool(trim(0))


async def give_back_every(seconds: float = TRIM_SECONDS) -> None:
    """`give_back` every `seconds`, in a worker thread, until cancelled. A failure is logged and the next
    tick tries again: the operator does not depend on it."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(give_back)
        except Exception as e:
            log.warning("could not give free memory back to the system: %s: %s", type(e).__name__, e)
