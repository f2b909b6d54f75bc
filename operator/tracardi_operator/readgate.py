"""One read at a time of a shared, cached value (`ReadGate.serve`), used by the listings the watches keep
(`listings.Listings`) and by the index inventory of each Elasticsearch cluster
(`retention.inventory.InventoryCache`).

When a cached value is due to be read again, one caller reads it; every other caller asking for the
same key meanwhile is served the value kept (it is older, but it is what they would have had a moment
before), or, when none is kept, waits for that read instead of sending its own. Many workers asking
for the same slow read at once would otherwise each send it, and leave none free for the installation
that was just edited.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Gate:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class ReadGate(Generic[K, V]):
    """One reader per key at a time (see the module's docstring). A key's lock lives only while someone
    reads or waits: the gates held never outnumber the keys being read at once."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._gates: dict[K, _Gate] = {}

    def serve(self, key: K, current: Callable[[], V | None], kept: Callable[[], V | None],
              read: Callable[[], V]) -> V:
        """`current()` when it has a value (the cached value is young enough); else `read()`, by this
        caller, or `kept()` (an older value) while another caller reads the same key, or, when nothing
        is kept, that caller's result, waited for (`current()` once it is done, or a read of one's own
        when it failed)."""
        found = current()
        if found is not None:
            return found
        gate = self._enter(key)
        try:
            if not gate.lock.acquire(blocking=False):
                older = kept()
                if older is not None:
                    return older  # being read again by another caller right now
                gate.lock.acquire()
            try:
                found = current()  # read by the caller this one waited for
                return found if found is not None else read()
            finally:
                gate.lock.release()
        finally:
            self._leave(key, gate)

    def _enter(self, key: K) -> _Gate:
        with self._mutex:
            gate = self._gates.get(key)
            if gate is None:
                gate = self._gates[key] = _Gate()
            gate.users += 1
            return gate

    def _leave(self, key: K, gate: _Gate) -> None:
        with self._mutex:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[key]
