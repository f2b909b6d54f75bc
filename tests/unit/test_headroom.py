"""Shard headroom (`retention.headroom`): the limit, the room under it, status.headroom as read and after a
deletion, IndexHeadroomLow's threshold, and the shards a fresh install needs."""

from __future__ import annotations

import datetime as dt

from tracardi_operator.models import HeadroomStatus
from tracardi_operator.retention import headroom
from tracardi_operator.retention.headroom import InstallLayout, install_shards

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_the_limit_is_per_data_node_and_a_cluster_without_data_nodes_has_no_room() -> None:
    assert headroom.shard_limit(1000, 2) == 2000
    assert headroom.available(1000, 2, 1500) == 500
    assert headroom.available(1000, 1, 1200) == 0
    assert headroom.available(1000, 0, 10) == 0
    assert headroom.shard_limit(-1, 3) == 0


def test_status_headroom_as_read() -> None:
    ok = headroom.assess(500, 1000, 1, reclaimable=120, now=NOW)
    assert ok == HeadroomStatus(shards_used=500, shard_limit=1000, used_percent=50, reclaimable_shards=120,
                                checked_at=NOW)
    assert not headroom.is_low(ok)
    assert headroom.assess(1500, 1000, 2, reclaimable=0, now=NOW).used_percent == 75
    assert headroom.assess(1200, 1000, 1, reclaimable=0, now=NOW).used_percent == 120
    nodeless = headroom.assess(10, 1000, 0, reclaimable=0, now=NOW)
    assert (nodeless.shard_limit, nodeless.used_percent) == (0, 100)
    assert headroom.is_low(nodeless)


def test_low_from_80_percent() -> None:
    assert headroom.is_low(headroom.assess(800, 1000, 1, reclaimable=0, now=NOW))
    assert not headroom.is_low(headroom.assess(799, 1000, 1, reclaimable=0, now=NOW))


def test_headroom_after_a_deletion() -> None:
    before = HeadroomStatus(shards_used=800, shard_limit=1000, used_percent=80, reclaimable_shards=300)
    after = headroom.freed(before, 300)
    assert (after.shards_used, after.used_percent, after.reclaimable_shards) == (500, 50, 0)
    assert headroom.freed(before, 900).shards_used == 0
    assert headroom.freed(HeadroomStatus(shards_used=5, shard_limit=0, used_percent=100), 1).used_percent == 100


def test_an_upgrade_fits_when_its_shards_fit_the_room() -> None:
    assert headroom.fits(456, 500)
    assert headroom.fits(1000, 1000)
    assert not headroom.fits(456, 400)
    assert headroom.fits(None, 0)  # a version whose layout is unknown is not refused


def test_install_shards() -> None:
    # 0.8.2: 37 indices per context and 2 static = 76 indices.
    assert install_shards("0820", shards_per_index=1, replicas=0) == 76
    assert install_shards("0820") == 76 * 3 * 2
    assert install_shards("0820", shards_per_index=None, replicas=0) == 76 * 3
    assert install_shards("08x", shards_per_index=1, replicas=0) == 72
    assert install_shards("080", shards_per_index=1, replicas=0) == 68
    assert install_shards("09x") is None
    layouts = {"09x": InstallLayout(plain_per_context=1, partitioned_per_context=1, static=1)}
    assert install_shards("09x", shards_per_index=2, replicas=1, layouts=layouts) == 5 * 4
