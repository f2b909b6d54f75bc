"""The inventory cache: callers that find a cluster's entry too old while another caller reads it again
get the old entry at once (or, with none yet, wait for that read) instead of sending their own read; a
fresh read is always one begun after the ask; an older read never replaces a newer one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from tests.support.fake_elastic import FakeElastic
from tracardi_operator.elastic import ElasticAdapter, RawInventory
from tracardi_operator.indices import VersionId
from tracardi_operator.retention.inventory import InventoryCache

KEY = ("http://es:9200",)


class SlowElastic(FakeElastic):
    """Each inventory read blocks until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.install(VersionId("080", "fa73a"))
        self.reads = 0
        self.started = threading.Event()
        self.go = threading.Event()

    def read_inventory(self) -> RawInventory:
        self.reads += 1
        self.started.set()
        assert self.go.wait(10)
        return super().read_inventory()


def adapter(es: Any) -> ElasticAdapter:
    return cast(ElasticAdapter, es)


def waiting_at_the_gate(cache: InventoryCache, callers: int) -> None:
    """Until `callers` callers hold the gate of KEY (one reading, the others waiting for its read)."""
    deadline = time.monotonic() + 10
    while getattr(cache._gate._gates.get(KEY), "users", 0) < callers:
        assert time.monotonic() < deadline, "the callers never reached the gate"
        time.sleep(0.005)


def test_callers_of_an_expired_entry_share_one_read() -> None:
    es = SlowElastic()
    cache = InventoryCache(ttl=60)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(cache.get, KEY, adapter(es))
        assert es.started.wait(5)
        others = [pool.submit(cache.get, KEY, adapter(es)) for _ in range(7)]
        waiting_at_the_gate(cache, 8)  # all of them, the reader included, hold the cluster's gate
        assert es.reads == 1
        es.go.set()
        entries = [first.result(5), *(f.result(5) for f in others)]
    assert es.reads == 1
    assert all(entry is entries[0] for entry in entries)
    assert len(entries[0].inventory.indices) == len(es.indices)


def test_while_an_expired_entry_is_read_again_the_others_get_the_old_one_at_once() -> None:
    es = SlowElastic()
    es.go.set()
    cache = InventoryCache(ttl=0.05)
    old = cache.get(KEY, adapter(es))
    time.sleep(0.1)  # expired
    es.go.clear()
    es.started.clear()
    with ThreadPoolExecutor(3) as pool:
        reading = pool.submit(cache.get, KEY, adapter(es))
        assert es.started.wait(5)
        # Served while the read in flight is held: waiting for it would time out, as it is let go after.
        assert pool.submit(cache.get, KEY, adapter(es)).result(5) is old
        es.go.set()
        new = reading.result(5)
    assert es.reads == 2
    assert new.at > old.at


def test_a_fresh_read_is_always_its_own_and_begins_after_the_ask() -> None:
    es = SlowElastic()
    es.go.set()
    cache = InventoryCache(ttl=60)
    cached = cache.get(KEY, adapter(es))
    assert cache.get(KEY, adapter(es)) is cached
    assert es.reads == 1
    asked = time.monotonic()
    fresh = cache.get(KEY, adapter(es), fresh=True)
    assert es.reads == 2
    assert fresh.at >= asked > cached.at
    assert cache.get(KEY, adapter(es)) is fresh


def test_an_older_read_never_replaces_a_newer_one() -> None:
    es = SlowElastic()
    cache = InventoryCache(ttl=60)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(cache.get, KEY, adapter(es))  # begins first, and is held
        assert es.started.wait(5)
        quick = FakeElastic()
        quick.install(VersionId("081", "fa73a"))
        newer = cache.get(KEY, adapter(quick), fresh=True)  # begins later, ends first
        es.go.set()
        older = slow.result(5)
    assert older.at < newer.at
    assert cache.get(KEY, adapter(es)) is newer
