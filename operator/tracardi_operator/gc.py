"""Re-exports `tracardi_operator.retention.execution` under its former name, for benchmarks/bench_gc.py
only: the operator and its tests import from `tracardi_operator.retention`. Remove once the benchmark
imports `retention.execution`, `retention.evidence` and `retention.inventory` itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence

from tracardi_operator.elastic import ElasticAdapter
from tracardi_operator.indices import VersionId
from tracardi_operator.models import RetentionStatus, TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.retention import execution
from tracardi_operator.retention.evidence import live_pairs
from tracardi_operator.retention.execution import Fresh
from tracardi_operator.retention.inventory import InventoryCache
from tracardi_operator.retention.status import RunOutcome

__all__ = ["Fresh", "InventoryCache", "live_pairs", "run"]


def run(  # noqa: PLR0913 - the former signature of the retention run, kept for benchmarks/bench_gc.py
    inst: TracardiInstallation,
    adapter: ElasticAdapter,
    cache: InventoryCache,
    policies: Sequence[TracardiRetentionPolicy],
    namespace_labels: Mapping[str, str],
    cluster_live: Iterable[VersionId],
    now: dt.datetime,
    *,
    publish: Callable[[RetentionStatus], None],
    recheck: Callable[[], Fresh],
    record_deleting: Callable[[Mapping[VersionId, Sequence[str]]], None],
) -> RunOutcome:
    """`retention.execution.run` with its effects as three functions."""
    effects = execution.Callbacks(publish=publish, recheck=recheck, record_deleting=record_deleting)
    return execution.run(inst, adapter, cache, policies, namespace_labels, cluster_live, now, effects)
