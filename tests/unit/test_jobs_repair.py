"""The repair plan for Tracardi 0.8.2's 08x→0820 migration (pure) and the judgement of copy tasks."""

from __future__ import annotations

import datetime as dt

import pytest

from tracardi_operator.indices import Context, VersionId, parse_index_name
from tracardi_operator.jobs.common import JobError
from tracardi_operator.jobs.repair import (
    REPAIRABLE,
    RepairCopy,
    destination_suffix,
    month_suffix,
    outcome_of,
    period_of,
    plan_repair,
    quarter_suffix,
    reindex_body,
    repair_applies,
    repair_summary,
    year_suffix,
)
from tracardi_operator.tracardi_api import MigrationEntry

SRC = VersionId("08x", "01506")
DST = VersionId("0820", "ffe49")
TODAY = dt.date(2026, 11, 3)

SOURCES = [
    "08x.01506.tracardi-event-2026-9",
    "08x.01506.tracardi-event-2026-10",
    "08x.01506.tracardi-profile-2026-10",
    "08x.01506.tracardi-session-2026-10",
    "08x.01506.tracardi-user-log-2026-9",
    "08x.01506.tracardi-entity",
    "08x.01506.tracardi-console-log",
    "08x.01506.tracardi-flow",
    "prod-08x.01506.tracardi-log-2026-10",
    "prod-08x.01506.tracardi-item-2026-8",
    "static-08x.01506.tracardi-bridge",
]


def faithful_listing() -> list[MigrationEntry]:
    return [
        MigrationEntry("1", "08x.01506.tracardi-entity", "0820.ffe49.tracardi-entity", False, False, "reindex", True),
        MigrationEntry(
            "2", "08x.01506.tracardi-console-log", "0820.ffe49.tracardi-console-log", False, False, "reindex", False
        ),
        MigrationEntry("3", "08x.01506.tracardi-flow", "0820.ffe49.tracardi-flow", False, False, "reindex", False),
    ]


def test_suffixes() -> None:
    assert quarter_suffix(dt.date(2026, 3, 31)) == "2026-q1"
    assert quarter_suffix(dt.date(2026, 4, 1)) == "2026-q2"
    assert quarter_suffix(dt.date(2026, 12, 1)) == "2026-q4"
    assert month_suffix(dt.date(2026, 1, 5)) == "2026-1"
    assert repair_applies("0820")
    assert not repair_applies("08x")


def test_plan_for_the_faithful_082_listing() -> None:
    names = [*SOURCES, "0820.ffe49.tracardi-entity", "0820.ffe49.tracardi-console-log", "0820.ffe49.tracardi-flow"]
    aliases = {"ffe49.tracardi-flow": ["0820.ffe49.tracardi-flow"]}
    counts = dict.fromkeys(SOURCES, 3)
    plan = plan_repair(names, aliases, faithful_listing(), counts, SRC, DST, "2026-q3", TODAY)
    routed = {(c.source, c.destination, c.transform) for c in plan.copies}
    assert routed == {
        ("08x.01506.tracardi-event-2026-9", "0820.ffe49.tracardi-event-2026-9", "event"),
        ("08x.01506.tracardi-event-2026-10", "0820.ffe49.tracardi-event-2026-10", "event"),
        ("08x.01506.tracardi-profile-2026-10", "0820.ffe49.tracardi-profile-2026-q3", "profile"),
        ("08x.01506.tracardi-session-2026-10", "0820.ffe49.tracardi-session-2026-q4", None),
        ("08x.01506.tracardi-user-log-2026-9", "0820.ffe49.tracardi-user-log-2026-year", None),
        ("08x.01506.tracardi-entity", "0820.ffe49.tracardi-entity-2026-q3", "entity"),
        ("08x.01506.tracardi-console-log", "0820.ffe49.tracardi-console-log-2026-11", None),
        ("prod-08x.01506.tracardi-log-2026-10", "prod-0820.ffe49.tracardi-log-2026-10", None),
        ("prod-08x.01506.tracardi-item-2026-8", "prod-0820.ffe49.tracardi-item-2026-year", None),
    }
    assert "template.0820.ffe49.tracardi-event" in plan.templates
    assert "prod-template.0820.ffe49.tracardi-log" in plan.templates
    assert plan.destinations()["08x.01506.tracardi-entity"] == "0820.ffe49.tracardi-entity-2026-q3"


# 0.8.2.1's own partitioning (docs/tracardi.md §9, docs/tracardi-resources.md): every repaired name is one
# 0.8.2.1 itself writes, and the index parser (retention) reads its partition.
@pytest.mark.parametrize(
    ("resource", "source_partition", "expected"),
    [
        ("event", "2023-11", "2023-11"),  # month
        ("event", "2024-1", "2024-1"),
        ("log", "2023-11", "2023-11"),  # month
        ("session", "2023-11", "2023-q4"),  # quarter
        ("session", "2024-3", "2024-q1"),
        ("session", "2024-4", "2024-q2"),
        ("user-log", "2023-11", "2023-year"),  # year
        ("user-log", "2024-1", "2024-year"),
        ("item", "2023-2", "2023-year"),  # year
        ("profile", "2023-11", "2026-q3"),  # quarter: every partition merged into the decided one
        ("profile", "2021-1", "2026-q3"),
        ("entity", None, "2026-q3"),  # quarter: the decided one (a retry in another quarter keeps it)
        ("console-log", None, "2026-11"),  # month: the current one
    ],
)
def test_each_resource_lands_in_the_partition_0821_writes(
    resource: str, source_partition: str | None, expected: str
) -> None:
    assert destination_suffix(resource, source_partition, "2026-q3", TODAY) == expected
    suffix = "" if source_partition is None else f"-{source_partition}"
    source = f"prod-08x.01506.tracardi-{resource}{suffix}"
    (copy,) = plan_repair([source], {}, [], {source: 5}, SRC, DST, "2026-q3", TODAY).copies
    assert copy.destination == f"prod-0820.ffe49.tracardi-{resource}-{expected}"
    parsed = parse_index_name(copy.destination)
    assert parsed is not None
    assert (parsed.resource, parsed.partition, parsed.version) == (resource, expected, DST)


def test_every_repairable_resource_follows_0821_partitioning() -> None:
    assert REPAIRABLE == {
        "event": "month", "log": "month", "console-log": "month",
        "profile": "quarter", "session": "quarter", "entity": "quarter",
        "item": "year", "user-log": "year",
    }


def test_months_of_one_period_meet_in_one_index_newest_first() -> None:
    sources = [f"08x.01506.tracardi-user-log-2025-{m}" for m in (1, 2, 10, 11, 12)]
    sources += ["08x.01506.tracardi-session-2025-7", "08x.01506.tracardi-session-2025-9"]
    plan = plan_repair(sources, {}, [], dict.fromkeys(sources, 1), SRC, DST, "2026-q4", TODAY)
    assert [(c.source.rsplit("-", 1)[1], c.destination.split("tracardi-")[1]) for c in plan.copies] == [
        ("9", "session-2025-q3"),
        ("7", "session-2025-q3"),
        ("12", "user-log-2025-year"),
        ("11", "user-log-2025-year"),
        ("10", "user-log-2025-year"),
        ("2", "user-log-2025-year"),
        ("1", "user-log-2025-year"),
    ]


def test_period_of_partition_suffixes() -> None:
    assert period_of("2026-11") == (dt.date(2026, 11, 1), 1)
    assert period_of("2026-q4") == (dt.date(2026, 10, 1), 3)
    assert period_of("2026-year") == (dt.date(2026, 1, 1), 12)
    assert period_of(None) is None
    assert period_of("2026-13") is None
    assert year_suffix(dt.date(2026, 5, 1)) == "2026-year"


def test_plan_skips_readable_listed_and_empty_sources() -> None:
    names = [
        "08x.01506.tracardi-session-2026-10",
        "0820.ffe49.tracardi-session-2026-10",
        "08x.01506.tracardi-log-2026-1",
    ]
    listing = [MigrationEntry("s", names[0], "0820.ffe49.tracardi-session-2026-10", True, False, "reindex", False)]
    aliases = {"ffe49.tracardi-session": ["0820.ffe49.tracardi-session-2026-10"]}
    counts = {names[0]: 4, names[2]: 0}
    plan = plan_repair(names, aliases, listing, counts, SRC, DST, "2026-q4", TODAY)
    assert plan.copies == ()
    assert plan_repair(names, aliases, listing, counts, SRC, DST, "2026-q4", TODAY).templates == ()


def test_the_same_inputs_give_the_same_plan() -> None:
    counts = dict.fromkeys(SOURCES, 1)
    first = plan_repair(SOURCES, {}, [], counts, SRC, DST, "2026-q4", TODAY)
    again = plan_repair(list(reversed(SOURCES)), {}, [], counts, SRC, DST, "2026-q4", TODAY)
    assert first == again


COPY = RepairCopy(Context.STAGING, "event", "s", "d", "event", 3)


def test_reindex_body_never_overwrites() -> None:
    body = reindex_body(COPY)
    assert body["dest"] == {"index": "d", "op_type": "create"}
    assert body["conflicts"] == "proceed"
    assert body["script"]["lang"] == "painless"
    plain = reindex_body(RepairCopy(Context.STAGING, "log", "s", "d", None, 1))
    assert "script" not in plain


def test_outcome_counts_conflicts_as_present_and_fails_on_failures() -> None:
    done = {"completed": True, "response": {"total": 3, "created": 1, "version_conflicts": 2, "failures": []}}
    outcome = outcome_of(COPY, done)
    assert (outcome.total, outcome.created, outcome.conflicts) == (3, 1, 2)
    failed = {"completed": True, "response": {"failures": [{"cause": {"reason": "strict mapping"}}]}}
    with pytest.raises(JobError, match="strict mapping") as info:
        outcome_of(COPY, failed)
    assert info.value.reason == "RepairFailed"
    with pytest.raises(JobError):
        outcome_of(COPY, {"completed": True, "error": {"reason": "boom"}})
    assert repair_summary([outcome]) == {"staging": {"event": {"copies": 1, "total": 3, "created": 1, "present": 2}}}
