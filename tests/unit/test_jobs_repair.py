"""The repair plan for Tracardi 0.8.2's 08x→0820 migration (pure) and the judgement of copy tasks."""

from __future__ import annotations

import datetime as dt

import pytest

from tracardi_operator.indices import Context, VersionId
from tracardi_operator.jobs.common import JobError
from tracardi_operator.jobs.repair import (
    RepairCopy,
    month_suffix,
    outcome_of,
    plan_repair,
    quarter_suffix,
    reindex_body,
    repair_applies,
    repair_summary,
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
        ("08x.01506.tracardi-event-2026-9", "0820.ffe49.tracardi-event-2026-q3", "event"),
        ("08x.01506.tracardi-event-2026-10", "0820.ffe49.tracardi-event-2026-q3", "event"),
        ("08x.01506.tracardi-profile-2026-10", "0820.ffe49.tracardi-profile-2026-q3", "profile"),
        ("08x.01506.tracardi-session-2026-10", "0820.ffe49.tracardi-session-2026-10", None),
        ("08x.01506.tracardi-user-log-2026-9", "0820.ffe49.tracardi-user-log-2026-9", None),
        ("08x.01506.tracardi-entity", "0820.ffe49.tracardi-entity-2026-q4", "entity"),
        ("08x.01506.tracardi-console-log", "0820.ffe49.tracardi-console-log-2026-11", None),
        ("prod-08x.01506.tracardi-log-2026-10", "prod-0820.ffe49.tracardi-log-2026-10", None),
        ("prod-08x.01506.tracardi-item-2026-8", "prod-0820.ffe49.tracardi-item-2026-8", None),
    }
    assert "template.0820.ffe49.tracardi-event" in plan.templates
    assert "prod-template.0820.ffe49.tracardi-log" in plan.templates
    assert plan.destinations()["08x.01506.tracardi-entity"] == "0820.ffe49.tracardi-entity-2026-q4"


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
