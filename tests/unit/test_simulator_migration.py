"""The simulator's migration map and GET /migration listing (docs/tracardi.md §8), computed without I/O."""

from __future__ import annotations

import datetime as dt
import hashlib

from devenv.simulator.migration import (
    STEP_08X_0820,
    STEP_080_08X,
    ListingOptions,
    list_migration,
    merged_destination,
    step_for,
)
from devenv.simulator.naming import CONTEXTS, Namespace
from devenv.simulator.transforms import PROFILE_080, SESSION_080_PRODUCTION, SESSION_080_STAGING

DAY = dt.date(2024, 3, 15)
FAITHFUL = ListingOptions(faithful_082=True, skip_partitioned=False)
FIXED = ListingOptions(faithful_082=False, skip_partitioned=False)


def _existing(ns: Namespace, step_source_plain: list[str], partitions: dict[str, list[str]]) -> list[str]:
    names = []
    for prefix in ("", "prod-"):
        names += [f"{prefix}{ns.db}.{ns.tenant}.{b}" for b in step_source_plain]
        for base, suffixes in partitions.items():
            names += [f"{prefix}{ns.db}.{ns.tenant}.{base}-{s}" for s in suffixes]
    return names


SRC_080 = Namespace("080", "fa73a")
DST_08X = Namespace("08x", "01506")
SRC_08X = Namespace("08x", "01506")
DST_0820 = Namespace("0820", "ffe49")


def all_080() -> list[str]:
    plain = [r.base for r in STEP_080_08X.source.plain]
    parts = {r.base: ["2023-11", "2023-12"] for r in STEP_080_08X.source.partitioned}
    return [*_existing(SRC_080, plain, parts), "080.fa73a.tracardi-api-instance", "static-080.fa73a.tracardi-bridge",
            "080.31b7b.tracardi-flow", "080.fa73a.tracardi-event-management-old"]


def all_08x() -> list[str]:
    plain = [r.base for r in STEP_08X_0820.source.plain]
    parts = {r.base: ["2023-11", "2024-1"] for r in STEP_08X_0820.source.partitioned}
    return _existing(SRC_08X, plain, parts)


def test_only_adjacent_steps_exist() -> None:
    assert step_for("080", "08x") is STEP_080_08X
    assert step_for("08x", "0820") is STEP_08X_0820
    assert step_for("080", "0820") is None
    assert step_for("0.7.4", "080") is None
    assert step_for("082x", "0820") is None
    assert len(STEP_080_08X.resources) == 32
    assert len(STEP_08X_0820.resources) == 35


def test_080_listing_covers_both_contexts_with_shared_single_ids() -> None:
    schemas = list_migration(STEP_080_08X, SRC_080, DST_08X, CONTEXTS, all_080(), FAITHFUL, {}, DAY)
    # 27 plain resources (32 minus 5 partitioned) + 5 partitioned x 2 partitions, per context
    assert len(schemas) == 2 * (27 + 10)
    single = [s for s in schemas if not s["copy_index"]["multi"]]
    assert len({s["id"] for s in single}) == 27
    multi = [s for s in schemas if s["copy_index"]["multi"]]
    for s in multi:
        ci = s["copy_index"]
        assert s["id"] == hashlib.sha1((ci["from_index"] + ci["to_index"]).encode()).hexdigest()
    assert {"080.fa73a.tracardi-event-2023-11": "08x.01506.tracardi-event-2023-11"}.items() <= \
        {s["copy_index"]["from_index"]: s["copy_index"]["to_index"] for s in schemas}.items()
    froms = {s["copy_index"]["from_index"] for s in schemas}
    assert "080.fa73a.tracardi-api-instance" not in froms
    assert "static-080.fa73a.tracardi-bridge" not in froms
    assert "080.fa73a.tracardi-event-management-old" not in froms
    assert all(s["worker"] == "reindex" and s["asynchronous"] and not s["wait_for_completion"] for s in schemas)
    assert {s["copy_index"]["production"] for s in schemas} == {True, False}


def test_080_scripts_per_context() -> None:
    schemas = list_migration(STEP_080_08X, SRC_080, DST_08X, CONTEXTS, all_080(), FAITHFUL, {}, DAY)
    by = {s["copy_index"]["from_index"]: s["copy_index"]["script"] for s in schemas}
    assert by["080.fa73a.tracardi-session-2023-11"] == SESSION_080_STAGING
    assert by["prod-080.fa73a.tracardi-session-2023-11"] == SESSION_080_PRODUCTION
    assert by["080.fa73a.tracardi-profile-2023-12"] == PROFILE_080
    assert by["080.fa73a.tracardi-flow"] is None
    scripted = {k for k, v in by.items() if v and not k.startswith("prod-")}
    assert {n.split(".tracardi-")[1].rsplit("-2023", 1)[0] for n in scripted} == {
        "session", "profile", "event-management", "rule", "event_to_profile"}


def test_entries_only_for_existing_sources() -> None:
    existing = ["080.fa73a.tracardi-flow", "080.fa73a.tracardi-event-2023-11"]
    schemas = list_migration(STEP_080_08X, SRC_080, DST_08X, CONTEXTS, existing, FAITHFUL, {}, DAY)
    assert [s["copy_index"]["from_index"] for s in schemas] == existing[::-1]
    assert list_migration(STEP_080_08X, Namespace("080", "31b7b"), DST_08X, CONTEXTS, all_080()[:5],
                          FAITHFUL, {}, DAY) == []


def test_skip_partitioned_fault() -> None:
    opts = ListingOptions(faithful_082=False, skip_partitioned=True)
    schemas = list_migration(STEP_080_08X, SRC_080, DST_08X, CONTEXTS, all_080(), opts, {}, DAY)
    assert len(schemas) == 54
    assert not any(s["copy_index"]["multi"] for s in schemas)


def test_0820_faithful_lists_no_partitioned_and_unsuffixed_entity_console_log() -> None:
    schemas = list_migration(STEP_08X_0820, SRC_08X, DST_0820, ["production"], all_08x(), FAITHFUL, {}, DAY)
    assert len(schemas) == 35 - 6
    # 0.8.2.1 marks its prod- entries production: false (docs/tracardi.md §9)
    assert all(s["copy_index"]["from_index"].startswith("prod-") for s in schemas)
    assert not any(s["copy_index"]["production"] for s in schemas)
    to = {s["copy_index"]["from_index"]: s["copy_index"]["to_index"] for s in schemas}
    assert to["prod-08x.01506.tracardi-entity"] == "prod-0820.ffe49.tracardi-entity"
    assert to["prod-08x.01506.tracardi-console-log"] == "prod-0820.ffe49.tracardi-console-log"
    assert not any("-event-20" in f or "-profile-" in f for f in to)


def test_0820_fixed_lists_everything_into_the_layout_0821_reads() -> None:
    schemas = list_migration(STEP_08X_0820, SRC_08X, DST_0820, ["staging"], all_08x(), FIXED, {}, DAY)
    assert len(schemas) == 29 + 6 * 2
    by = {s["copy_index"]["from_index"]: s for s in schemas}
    assert by["08x.01506.tracardi-entity"]["copy_index"]["to_index"] == "0820.ffe49.tracardi-entity-2024-q1"
    assert by["08x.01506.tracardi-console-log"]["copy_index"]["to_index"] == "0820.ffe49.tracardi-console-log-2024-3"
    ev = by["08x.01506.tracardi-event-2023-11"]
    assert ev["worker"] == "reindex_to_one_index"
    assert ev["params"]["partitioning"] == "quarter"
    assert ev["copy_index"]["to_index"] == "0820.ffe49.tracardi-event-2023-11"
    assert by["08x.01506.tracardi-user-log-2024-1"]["copy_index"]["to_index"] == "0820.ffe49.tracardi-user-log-2024-1"
    assert by["08x.01506.tracardi-session-2023-11"]["worker"] == "reindex"


def test_0820_fixed_entity_follows_item_partitioning() -> None:
    schemas = list_migration(STEP_08X_0820, SRC_08X, DST_0820, ["staging"], all_08x(), FIXED,
                             {"ITEM_PARTITIONING": "month"}, DAY)
    by = {s["copy_index"]["from_index"]: s["copy_index"]["to_index"] for s in schemas}
    assert by["08x.01506.tracardi-entity"] == "0820.ffe49.tracardi-entity-2024-3"


def test_merged_destination() -> None:
    assert merged_destination("0820.ffe49.tracardi-event-2023-11", DAY, False) == "0820.ffe49.tracardi-event-2024-q1"
    assert merged_destination("0820.ffe49.tracardi-event-2023-11", DAY, True) == "0820.ffe49.tracardi-event-2024-q4"
    assert merged_destination("0820.ffe49.tracardi-event-2023-q4", DAY, False) == "0820.ffe49.tracardi-event-2023-q4"


def test_the_task_index_is_migrated_like_the_other_resources() -> None:
    """So a version's task list also holds the tasks of the version it was migrated from (§9)."""
    assert "task" in STEP_080_08X.resources
    assert "task" in STEP_08X_0820.resources
    for step, src, dst, names in ((STEP_080_08X, SRC_080, DST_08X, all_080()),
                                  (STEP_08X_0820, SRC_08X, DST_0820, all_08x())):
        schemas = list_migration(step, src, dst, CONTEXTS, names, FAITHFUL, {}, DAY)
        to = {s["copy_index"]["from_index"]: s["copy_index"]["to_index"] for s in schemas}
        for prefix in ("", "prod-"):
            assert to[f"{prefix}{src.db}.{src.tenant}.tracardi-task"] == f"{prefix}{dst.db}.{dst.tenant}.tracardi-task"
