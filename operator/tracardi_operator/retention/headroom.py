"""Shard headroom: the shards in use against Elasticsearch's limit, in one place (pure).

Elasticsearch refuses to create an index when its open shards plus the new ones exceed the limit,
cluster.max_shards_per_node times the data nodes; a cluster without data nodes (or with a limit of 0)
has no room at all.

What lives here:
- `shard_limit` and `available`: the limit, and the room left under it (the rollout refuses a version
  change whose new indices would not fit: `fits`).
- `assess` and `freed`: status.headroom as read, and as it is once a retention run deleted shards.
- `is_low`: IndexHeadroomLow, at or above `LOW_PERCENT` of the limit.
- `install_shards`: the shards a fresh install of a Tracardi database version creates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from tracardi_operator.models import HeadroomStatus

LOW_PERCENT = 80
"""IndexHeadroomLow is True from this percentage of the shard limit in use."""


def shard_limit(max_shards_per_node: int, data_nodes: int) -> int:
    """The shards the cluster allows: max_shards_per_node times the data nodes."""
    return max(0, max_shards_per_node) * max(0, data_nodes)


def available(max_shards_per_node: int, data_nodes: int, shards_in_use: int) -> int:
    """Room for new shards under the limit (0 when the cluster is at or over it)."""
    return max(0, shard_limit(max_shards_per_node, data_nodes) - shards_in_use)


def fits(needed: int | None, room: int) -> bool:
    """Whether `needed` new shards fit in `room`; an unknown need (None) is not refused."""
    return needed is None or needed <= room


def _percent(used: int, limit: int) -> int:
    return int(100 * used / limit) if limit > 0 else 100


def assess(
    shards_in_use: int, max_shards_per_node: int, data_nodes: int, *, reclaimable: int, now: dt.datetime
) -> HeadroomStatus:
    """status.headroom: shards in use against the limit, and what retention could free."""
    limit = shard_limit(max_shards_per_node, data_nodes)
    return HeadroomStatus(shards_used=shards_in_use, shard_limit=limit, used_percent=_percent(shards_in_use, limit),
                          reclaimable_shards=reclaimable, checked_at=now)


def freed(headroom: HeadroomStatus, shards: int) -> HeadroomStatus:
    """Headroom once `shards` are gone."""
    used = max(0, headroom.shards_used - shards)
    return headroom.model_copy(update={"shards_used": used, "used_percent": _percent(used, headroom.shard_limit),
                                       "reclaimable_shards": max(0, (headroom.reclaimable_shards or 0) - shards)})


def is_low(headroom: HeadroomStatus) -> bool:
    return headroom.used_percent >= LOW_PERCENT


# --------------------------------------------------------------------------------------------------
# What a fresh install needs


@dataclass(frozen=True)
class InstallLayout:
    """Indices a fresh install creates (docs/tracardi-resources.md): per context, plus the static ones."""

    plain_per_context: int
    partitioned_per_context: int  # the install creates the current partition of each
    static: int

    @property
    def indices(self) -> int:
        return 2 * (self.plain_per_context + self.partitioned_per_context) + self.static


INSTALL_LAYOUTS: Mapping[str, InstallLayout] = {
    "080": InstallLayout(plain_per_context=28, partitioned_per_context=5, static=2),
    "08x": InstallLayout(plain_per_context=29, partitioned_per_context=6, static=2),
    "0820": InstallLayout(plain_per_context=27, partitioned_per_context=10, static=2),
}

# Tracardi's own defaults when ELASTIC_INDEX_SHARDS / ELASTIC_INDEX_REPLICAS are unset
# (tracardi/config.py: "3" and "1"). Replicas count against the limit even when unassigned.
TRACARDI_DEFAULT_SHARDS = 3
TRACARDI_DEFAULT_REPLICAS = 1


def install_shards(
    db_version: str,
    *,
    shards_per_index: int | None = None,
    replicas: int | None = None,
    layouts: Mapping[str, InstallLayout] = INSTALL_LAYOUTS,
) -> int | None:
    """Shards a fresh install of `db_version` creates, or None for a version whose layout is unknown;
    unset shards and replicas are Tracardi's defaults.

    An upper bound: some 0.8.2 configuration indices use ELASTIC_CONF_INDEX_SHARDS (default 1).
    """
    layout = layouts.get(db_version)
    if layout is None:
        return None
    shards = TRACARDI_DEFAULT_SHARDS if shards_per_index is None else shards_per_index
    copies = 1 + (TRACARDI_DEFAULT_REPLICAS if replicas is None else replicas)
    return layout.indices * shards * copies
