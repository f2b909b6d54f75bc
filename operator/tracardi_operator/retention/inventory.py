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

INVENTORY_TTL = 20.0
"""Seconds one inventory read serves every installation on the same cluster."""


@dataclass
class CachedInventory:
    """One read of a cluster's inventory: when, Elasticsearch's answers, and their reading."""

    at: float
    raw: RawInventory
    inventory: Inventory


class InventoryCache:
    """One inventory read per cluster per cycle, shared by the installations on that cluster."""

    def __init__(self, ttl: float = INVENTORY_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], CachedInventory] = {}

    def get(self, key: tuple[str, ...], adapter: ElasticAdapter, fresh: bool = False) -> CachedInventory:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not fresh and time.monotonic() - entry.at < self.ttl:
                return entry
        raw = adapter.read_inventory()
        inventory = parse_inventory(raw.cat_indices, raw.aliases, raw.index_templates, raw.mappings)
        entry = CachedInventory(time.monotonic(), raw, inventory)
        with self._lock:
            self._entries[key] = entry
        return entry

    def refreshed(self, key: tuple[str, ...], adapter: ElasticAdapter, previous: CachedInventory,
                  about: Sequence[str], deleted: Sequence[str]) -> CachedInventory:
        """`previous` read again where it can change what becomes of `about` (`refresh_inventory`)."""
        raw = adapter.refresh_inventory(previous.raw, about, deleted)
        inventory = parse_inventory(raw.cat_indices, raw.aliases, raw.index_templates, raw.mappings)
        entry = CachedInventory(time.monotonic(), raw, inventory)
        with self._lock:
            self._entries[key] = entry
        return entry

    def invalidate(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._entries.pop(key, None)
