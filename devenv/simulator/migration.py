"""Which copies a migration consists of: the migration map and GET /migration's listing, as pure functions.

docs/tracardi.md §5 and §8 "Migration listing"/"Migration map"; docs/tracardi-migration-transforms.md §3, §4.
Only adjacent steps exist: 080→08x (run by 0.8.1) and 08x→0820 (run by 0.8.2.x). The listing depends on
which source indices exist, on the context(s) listed, on the simulator mode and on the faults:
- faithful 0.8.2.x (default): no partitioned entry at all; entity and console-log go to unsuffixed,
  unaliased names (Tracardi's bugs);
- fixed: everything, into the layout 0.8.2.1 reads (entity, console-log into the current partition);
- fault migration-skips-partitioned (any version): partitioned sources not listed.
0.8.2.x marks every entry `production: false`, its `prod-` entries too (docs/tracardi.md §9 "Listings").
The task index is one of the resources copied, so a version's task list also holds its predecessor's tasks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from devenv.simulator.mappings import Json
from devenv.simulator.naming import (
    Context,
    Namespace,
    effective_partitioning,
    partition_suffix,
    tracardi_run_quarter_suffix,
)
from devenv.simulator.transforms import script_for
from devenv.simulator.versions import V08X, V080, V0820, Version

MERGE_REPLACE = r"(\d{4}-\d+)$"
"""What `reindex_to_one_index` replaces in a provisional destination name
(docs/tracardi-migration-transforms.md §3.3)."""


@dataclass(frozen=True)
class MigrationStep:
    """One adjacent migration, run by the destination version's API."""

    source: Version
    target: Version
    resources: tuple[str, ...]
    """Resource keys copied (same key in both versions)."""
    merged: tuple[str, ...] = ()
    """Resources copied with `reindex_to_one_index` (every partition into one destination partition)."""


STEP_080_08X = MigrationStep(
    V080, V08X,
    # 32 resources: 0.8.0's per-context resources without api-instance (gone in 0.8.1).
    tuple(r.key for r in V080.resources if not r.static and r.key != "api-instance"),
)
STEP_08X_0820 = MigrationStep(
    V08X, V0820,
    # 35 resources: all of 0.8.1's per-context resources.
    tuple(r.key for r in V08X.resources if not r.static),
    merged=("event", "profile"),
)

_STEPS: dict[tuple[str, str], MigrationStep] = {
    ("080", "08x"): STEP_080_08X,
    ("08x", "0820"): STEP_08X_0820,
}


def step_for(from_db: str, to_db: str) -> MigrationStep | None:
    """None for anything but the adjacent steps the simulator knows (the API answers 404)."""
    return _STEPS.get((from_db, to_db))


@dataclass(frozen=True)
class ListingOptions:
    faithful_082: bool
    """Reproduce 0.8.2.1's listing bugs (only affects the 08x→0820 step)."""
    skip_partitioned: bool
    """The migration-skips-partitioned fault."""


def entry_id(from_index: str, to_index: str) -> str:
    return hashlib.sha1((from_index + to_index).encode(), usedforsecurity=False).hexdigest()


def single_entry_id(step: MigrationStep, resource: str) -> str:
    """Single-index entries come from Tracardi's schema file: the same id in both contexts."""
    seed = f"{step.source.db_version}->{step.target.db_version}:{resource}"
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


def list_migration(
    step: MigrationStep,
    source: Namespace,
    target: Namespace,
    contexts: Iterable[Context],
    existing: Iterable[str],
    options: ListingOptions,
    target_env: Mapping[str, str],
    today: dt.date,
) -> list[Json]:
    """The `schemas` of GET /migration/{from_db}: one entry per existing single source index, and one per
    existing source partition, for each context asked."""
    existing_set = set(existing)
    buggy = options.faithful_082 and step is STEP_08X_0820
    flags_production = step.target.db_version not in ("0820", "082x")
    schemas: list[Json] = []
    for context in contexts:
        for key in step.resources:
            src = step.source.resource(key)
            dst = step.target.resource(key)
            script = script_for(step.source.db_version, key, context)
            worker = "reindex_to_one_index" if key in step.merged else "reindex"
            params: Json = {"partitioning": "quarter", "replace": MERGE_REPLACE} if key in step.merged else {}
            if src.partitioned:
                if buggy or options.skip_partitioned:
                    continue
                pattern = source.partition_regex(src, context)
                for name in sorted(existing_set):
                    m = pattern.match(name)
                    if not m:
                        continue
                    to_index = target.index(dst, context, m.group(1))
                    schemas.append(_schema(entry_id(name, to_index), name, to_index, True, context, script,
                                           worker, params, flags_production))
                continue
            from_index = source.index(src, context)
            if from_index not in existing_set:
                continue
            part = effective_partitioning(dst, target_env)
            if part is None or buggy:
                # Faithful 0.8.2.1: a resource that became partitioned is still copied as a single index.
                to_index = target.index(dst, context)
            else:
                to_index = target.index(dst, context, partition_suffix(part, today))
            schemas.append(_schema(single_entry_id(step, key), from_index, to_index, False, context, script,
                                   worker, params, flags_production))
    return schemas


def _schema(
    entry: str, from_index: str, to_index: str, multi: bool, context: Context, script: str | None,
    worker: str, params: Json, flags_production: bool,
) -> Json:
    return {
        "id": entry,
        "copy_index": {
            "from_index": from_index,
            "to_index": to_index,
            "multi": multi,
            "production": flags_production and context == "production",
            "script": script,
        },
        "worker": worker,
        "asynchronous": True,
        "wait_for_completion": False,
        "params": params,
    }


def merged_destination(to_index: str, when: dt.date, tracardi_quarter: bool) -> str:
    """Where `reindex_to_one_index` writes: the provisional name with its `YYYY-M` suffix replaced by the
    run-time quarter (correct, or 0.8.2's `(month % 4) + 1` when reproducing that bug)."""
    suffix = tracardi_run_quarter_suffix(when) if tracardi_quarter else partition_suffix("quarter", when)
    return re.sub(MERGE_REPLACE, suffix, to_index)
