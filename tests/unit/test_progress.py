"""`progress`: the upgrade step that ended and its duration, and the migration Jobs that just finished."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.factories import FakeClock
from tracardi_operator.models import TracardiInstallationStatus
from tracardi_operator.progress import StepClock, finished_migrations

STARTED = dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC)


def status(step: str | None, jobs: list[dict[str, Any]] | None = None, to: str = "0.8.1",
           started: dt.datetime = STARTED) -> TracardiInstallationStatus:
    if step is None:
        return TracardiInstallationStatus()
    return TracardiInstallationStatus.model_validate({"upgrade": {
        "kind": "Migrate", "toVersion": to, "step": step, "startedAt": started.isoformat(), "jobs": jobs or []}})


def test_a_step_is_timed_from_when_it_was_first_seen_to_when_another_replaced_it() -> None:
    clock = FakeClock()
    steps = StepClock(clock=clock)
    key = ("shop", "acme")
    assert steps.seen(key, status("Installing")) is None
    clock.sleep(30)
    assert steps.seen(key, status("Installing")) is None, "the same step again: nothing ended"
    clock.sleep(12)
    assert steps.seen(key, status("Migrating")) == ("Installing", 42)
    clock.sleep(5)
    assert steps.seen(key, status("Completed")) == ("Migrating", 5), "Completed ends the last step"
    assert steps.seen(key, status("Completed")) is None
    assert steps.seen(key, status(None)) is None


def test_the_same_step_of_another_change_is_a_new_step() -> None:
    clock = FakeClock()
    steps = StepClock(clock=clock)
    key = ("shop", "acme")
    steps.seen(key, status("Installing", to="0.8.1"))
    clock.sleep(3)
    later = STARTED + dt.timedelta(hours=1)
    assert steps.seen(key, status("Installing", to="0.8.2.1", started=later)) == ("Installing", 3)
    steps.forget(key)
    assert steps.seen(key, status("Migrating", to="0.8.2.1", started=later)) is None, "forgotten: not timed"


def test_a_migration_is_counted_once_when_its_outcome_is_first_decided() -> None:
    running = [{"name": "acme-migrate", "purpose": "Migrate", "outcome": "Running"},
               {"name": "acme-install", "purpose": "Install", "outcome": "Succeeded"}]
    done = [{"name": "acme-migrate", "purpose": "Migrate", "outcome": "Succeeded"},
            {"name": "acme-install", "purpose": "Install", "outcome": "Succeeded"}]
    failed = [{"name": "acme-migrate-2", "purpose": "Migrate", "outcome": "Failed"}]
    assert finished_migrations(status("Migrating", running), status("Verifying", done)) == ["succeeded"]
    assert finished_migrations(status("Verifying", done), status("Switching", done)) == [], "already counted"
    assert finished_migrations(status(None), status("Migrating", failed)) == ["failed"]
    assert finished_migrations(status("Migrating", running), status("Migrating", running)) == []
