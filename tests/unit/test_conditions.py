"""Conditions: set, merge, transition times, and the phase summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracardi_operator import conditions as c
from tracardi_operator.models import Condition

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_set_new_condition_appends_with_time_to_the_second() -> None:
    result = c.set_condition([], c.READY, True, "Installed", "0.8.1 installed", now=T0, observed_generation=3)
    assert len(result) == 1
    ready = result[0]
    assert (ready.type, ready.status, ready.reason, ready.message) == ("Ready", "True", "Installed", "0.8.1 installed")
    assert ready.last_transition_time == T0.replace(microsecond=0)
    assert ready.observed_generation == 3


def test_same_status_keeps_transition_time_but_updates_the_rest() -> None:
    first = c.set_condition([], c.PROGRESSING, True, "Installing", "install Job running", now=T0)
    second = c.set_condition(
        first, c.PROGRESSING, "True", "Migrating", "migration Job running", now=T1, observed_generation=4
    )
    assert second[0].last_transition_time == first[0].last_transition_time
    assert (second[0].reason, second[0].message, second[0].observed_generation) == (
        "Migrating",
        "migration Job running",
        4,
    )


def test_status_change_moves_transition_time() -> None:
    first = c.set_condition([], c.READY, False, "Installing", "", now=T0)
    second = c.set_condition(first, c.READY, True, "Installed", "", now=T1)
    assert second[0].last_transition_time == T1.replace(microsecond=0)


def test_unchanged_condition_gives_an_equal_list() -> None:
    first = c.set_condition([], c.READY, True, "Installed", "ok", now=T0, observed_generation=1)
    assert c.set_condition(first, c.READY, True, "Installed", "ok", now=T1, observed_generation=1) == first


def test_order_is_kept_and_input_untouched() -> None:
    start = c.set_condition([], c.READY, True, "Installed", "", now=T0)
    start = c.set_condition(start, c.PROGRESSING, False, "Idle", "", now=T0)
    before = list(start)
    updated = c.set_condition(start, c.READY, False, "JobFailed", "", now=T1)
    assert [condition.type for condition in updated] == ["Ready", "Progressing"]
    assert start == before


def test_merge_many() -> None:
    start = c.set_condition([], c.READY, True, "Installed", "", now=T0)
    merged = c.merge(
        start,
        [
            c.make_condition(c.READY, True, "Installed", "still", now=T1),
            c.make_condition(c.DEGRADED, False, "AsExpected", "", now=T1),
        ],
    )
    assert [(x.type, x.last_transition_time) for x in merged] == [
        ("Ready", T0.replace(microsecond=0)),
        ("Degraded", T1.replace(microsecond=0)),
    ]


def test_find_status_remove() -> None:
    conditions = c.set_condition([], c.PAUSED, True, "Paused", "spec.paused is true", now=T0)
    found = c.find(conditions, c.PAUSED)
    assert found is not None
    assert found.status == "True"
    assert c.find(conditions, c.READY) is None
    assert c.status_of(conditions, c.READY) == "Unknown"
    assert c.is_true(conditions, c.PAUSED)
    assert c.remove(conditions, c.PAUSED) == []


def test_long_messages_are_cut() -> None:
    conditions = c.set_condition([], c.DEGRADED, True, "JobFailed", "x" * 100_000, now=T0)
    assert len(conditions[0].message) == c.MAX_MESSAGE_LENGTH


def test_invalid_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="reason"):
        c.make_condition(c.READY, True, "not camel case", "", now=T0)


def _conditions(**statuses: str) -> list[Condition]:
    result: list[Condition] = []
    for condition_type, status in statuses.items():
        result = c.set_condition(result, condition_type, status, "Because", "", now=T0)  # type: ignore[arg-type]
    return result


@pytest.mark.parametrize(
    ("statuses", "phase"),
    [
        ({}, "Pending"),
        ({"Ready": "False"}, "Pending"),
        ({"Ready": "True"}, "Ready"),
        ({"Ready": "True", "Progressing": "True"}, "Progressing"),
        ({"Ready": "False", "Progressing": "True"}, "Progressing"),
        ({"Ready": "True", "SpecAccepted": "False"}, "Blocked"),
        ({"Ready": "True", "SpecAccepted": "True"}, "Ready"),
        ({"Progressing": "True", "SpecAccepted": "False"}, "Blocked"),
        ({"Ready": "True", "Degraded": "True", "SpecAccepted": "False"}, "Degraded"),
        ({"Ready": "True", "Degraded": "False"}, "Ready"),
        ({"Ready": "True", "Degraded": "True", "Paused": "True"}, "Paused"),
        ({"Paused": "False", "Ready": "True"}, "Ready"),
        ({"Ready": "Unknown"}, "Pending"),
    ],
)
def test_phase_summary(statuses: dict[str, str], phase: str) -> None:
    assert c.summarize_phase(_conditions(**statuses)) == phase
