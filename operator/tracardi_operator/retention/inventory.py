"""The index inventory of Elasticsearch clusters, read once per cluster and cycle and shared by every
installation on it (reads Elasticsearch through `elastic.ElasticAdapter`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tracardi_operator.elastic import ElasticAdapter, RawInventory
from tracardi_operator.indices import Inventory, parse_inventory
from tracardi_operator.readgate import ReadGate

INVENTORY_TTL = 20.0
"""Seconds one inventory read serves every installation on the same cluster."""


@dataclass
class CachedInventory:
    """One read of a cluster's inventory: when it started, Elasticsearch's answers, and their reading."""

    at: float
    """time.monotonic() when the read began: whatever changed before then, it saw."""
    raw: RawInventory
    inventory: Inventory


class InventoryCache:
    """One inventory read per cluster per cycle, shared by the installations on that cluster.

    When the entry of a cluster is too old, one caller reads it again; the others asking meanwhile are
    served the old entry (a read takes at most a few seconds longer than the TTL to replace it), or,
    when there is none yet, wait for that read (`readgate.ReadGate`). On a cluster of thousands of
    indices a read takes a while, and every worker reading or waiting for the same inventory at once
    would leave none for an installation that was just edited.
    """

    def __init__(self, ttl: float = INVENTORY_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], CachedInventory] = {}
        self._gate: ReadGate[tuple[str, ...], CachedInventory] = ReadGate()

    def get(self, key: tuple[str, ...], adapter: ElasticAdapter, fresh: bool = False) -> CachedInventory:
        """The cluster's inventory: the cached one while it is younger than the TTL, else read (by this
        caller; or the older entry while another caller reads it; or, with none, that caller's read,
        waited for). `fresh`: always a read begun now."""
        if fresh:
            return self._read(key, adapter)
        return self._gate.serve(key, current=lambda: self._young(key), kept=lambda: self._kept(key),
                                read=lambda: self._read(key, adapter))

    def refreshed(self, key: tuple[str, ...], adapter: ElasticAdapter, previous: CachedInventory,
                  about: Sequence[str], deleted: Sequence[str]) -> CachedInventory:
        """`previous` read again where it can change what becomes of `about` (`refresh_inventory`)."""
        started = time.monotonic()
        raw = adapter.refresh_inventory(previous.raw, about, deleted)
        return self._keep(key, CachedInventory(started, raw, _parsed(raw)))

    def invalidate(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _young(self, key: tuple[str, ...]) -> CachedInventory | None:
        with self._lock:
            entry = self._entries.get(key)
        return entry if entry is not None and time.monotonic() - entry.at < self.ttl else None

    def _kept(self, key: tuple[str, ...]) -> CachedInventory | None:
        with self._lock:
            return self._entries.get(key)

    def _read(self, key: tuple[str, ...], adapter: ElasticAdapter) -> CachedInventory:
        started = time.monotonic()
        raw = adapter.read_inventory()
        return self._keep(key, CachedInventory(started, raw, _parsed(raw)))

    def _keep(self, key: tuple[str, ...], entry: CachedInventory) -> CachedInventory:
        """Cache `entry` unless a read begun later is cached already; returns `entry` either way."""
        with self._lock:
            cached = self._entries.get(key)
            if cached is None or cached.at <= entry.at:
                self._entries[key] = entry
        return entry


def _parsed(raw: RawInventory) -> Inventory:
    return parse_inventory(raw.cat_indices, raw.aliases, raw.index_templates, raw.mappings)
