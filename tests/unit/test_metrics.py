"""The operator's metrics: names, labels, helpers and the values computed at scrape time."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from tests.factories import FakeClock
from tracardi_operator.metrics import Metrics, new_metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_fresh_registries_are_independent() -> None:
    first, second = new_metrics(), new_metrics()
    first.count_reconciliation("ok")
    assert sample(first, "tracardi_operator_reconciliations_total", result="ok") == 1
    assert sample(second, "tracardi_operator_reconciliations_total", result="ok") is None


def test_every_metric_is_exposed_under_its_documented_name() -> None:
    metrics = new_metrics()
    metrics.count_reconciliation("retry")
    metrics.observe_step("Migrating", 12.0)
    metrics.migrated("failed")
    metrics.gc_planned("acme", "tracardi", 4)
    metrics.gc_deleted("acme", "tracardi", 4)
    metrics.installation_status("acme", "tracardi", "Ready", {"Degraded": "False"})
    text = generate_latest(metrics.registry).decode()
    for name in (
        "tracardi_operator_reconciliations_total",
        "tracardi_operator_upgrade_step_duration_seconds_bucket",
        "tracardi_operator_migrations_total",
        "tracardi_operator_gc_indices_planned",
        "tracardi_operator_gc_indices_deleted_total",
        "tracardi_operator_installations_paused",
        "tracardi_operator_last_watch_event_age_seconds",
        "tracardi_operator_installation_phase",
        "tracardi_operator_installation_condition",
    ):
        assert f"\n{name}" in text, name


def test_counters_and_histogram_by_label() -> None:
    metrics = new_metrics()
    metrics.count_reconciliation("ok")
    metrics.count_reconciliation("ok")
    metrics.count_reconciliation("retry")
    metrics.count_reconciliation("error")
    metrics.migrated("succeeded")
    metrics.observe_step("Migrating", 90.0)
    metrics.observe_step("Migrating", 30.0)
    assert sample(metrics, "tracardi_operator_reconciliations_total", result="ok") == 2
    assert sample(metrics, "tracardi_operator_reconciliations_total", result="retry") == 1
    assert sample(metrics, "tracardi_operator_reconciliations_total", result="error") == 1
    assert sample(metrics, "tracardi_operator_migrations_total", result="succeeded") == 1
    assert sample(metrics, "tracardi_operator_upgrade_step_duration_seconds_count", step="Migrating") == 2
    assert sample(metrics, "tracardi_operator_upgrade_step_duration_seconds_sum", step="Migrating") == 120
    assert sample(metrics, "tracardi_operator_upgrade_step_duration_seconds_bucket", step="Migrating", le="60.0") == 1


def test_reconciliations_count_by_result() -> None:
    """ok, retry (a pass that raised, tried again with backoff) and error (permanent) are three series."""
    metrics = new_metrics()
    metrics.count_reconciliation("ok")
    metrics.count_reconciliation("retry")
    metrics.count_reconciliation("retry")
    assert sample(metrics, "tracardi_operator_reconciliations_total", result="ok") == 1
    assert sample(metrics, "tracardi_operator_reconciliations_total", result="retry") == 2
    assert sample(metrics, "tracardi_operator_reconciliations_total", result="error") is None
    assert sample(metrics, "tracardi_operator_reconciliations_total", result="success") is None


def test_time_step_records_the_duration_also_when_the_step_raises() -> None:
    clock = FakeClock()
    metrics = new_metrics(clock)
    with metrics.time_step("Installing"):
        clock.now += 42

    def failing_step() -> None:
        with metrics.time_step("Verifying"):
            clock.now += 3
            raise RuntimeError("count mismatch")

    with pytest.raises(RuntimeError):
        failing_step()
    assert sample(metrics, "tracardi_operator_upgrade_step_duration_seconds_sum", step="Installing") == 42
    assert sample(metrics, "tracardi_operator_upgrade_step_duration_seconds_sum", step="Verifying") == 3


def test_gc_planned_is_a_gauge_and_deleted_accumulates() -> None:
    metrics = new_metrics()
    metrics.gc_planned("acme", "tracardi", 7)
    metrics.gc_planned("acme", "tracardi", 2)
    metrics.gc_deleted("acme", "tracardi", 5)
    metrics.gc_deleted("acme", "tracardi", 2)
    labels = {"namespace": "acme", "installation": "tracardi"}
    assert sample(metrics, "tracardi_operator_gc_indices_planned", **labels) == 2
    assert sample(metrics, "tracardi_operator_gc_indices_deleted_total", **labels) == 7


def test_paused_installations_are_counted_once_each_and_forgotten_on_deletion() -> None:
    metrics = new_metrics()
    metrics.set_paused("acme", "a", True)
    metrics.set_paused("acme", "a", True)
    metrics.set_paused("beta", "a", True)
    assert sample(metrics, "tracardi_operator_installations_paused") == 2
    metrics.set_paused("beta", "a", False)
    metrics.gc_planned("acme", "a", 3)
    metrics.forget_installation("acme", "a")
    metrics.forget_installation("never", "seen")
    assert sample(metrics, "tracardi_operator_installations_paused") == 0
    assert sample(metrics, "tracardi_operator_gc_indices_planned", namespace="acme", installation="a") is None


def test_watch_event_age_is_computed_at_scrape_time() -> None:
    clock = FakeClock()
    metrics = new_metrics(clock)
    clock.now += 30
    # No event yet: the age of the process, so a stream that never delivered still looks old.
    assert metrics.watch_age() is None
    assert sample(metrics, "tracardi_operator_last_watch_event_age_seconds") == 30
    metrics.touch()
    clock.now += 5
    assert metrics.watch_age() == 5
    assert sample(metrics, "tracardi_operator_last_watch_event_age_seconds") == 5
    assert metrics.uptime() == 35


def test_an_installations_phase_is_one_series_that_follows_its_status() -> None:
    metrics = new_metrics()
    labels = {"namespace": "acme", "installation": "a"}
    metrics.installation_status("acme", "a", "Progressing", {})
    metrics.installation_status("acme", "a", "Degraded", {})
    metrics.installation_status("acme", "b", "Ready", {})
    assert sample(metrics, "tracardi_operator_installation_phase", **labels, phase="Degraded") == 1
    assert sample(metrics, "tracardi_operator_installation_phase", **labels, phase="Progressing") is None
    metrics.installation_status("acme", "a", None, {})
    assert sample(metrics, "tracardi_operator_installation_phase", **labels, phase="Degraded") is None
    assert sample(metrics, "tracardi_operator_installation_phase", namespace="acme", installation="b",
                  phase="Ready") == 1


def test_conditions_are_one_when_true_and_zero_when_false_or_unknown() -> None:
    metrics = new_metrics()
    labels = {"namespace": "acme", "installation": "a"}
    metrics.installation_status("acme", "a", "Degraded", {"Degraded": "True", "Ready": "False",
                                                          "IndexHeadroomLow": "Unknown"})
    assert sample(metrics, "tracardi_operator_installation_condition", **labels, condition="Degraded") == 1
    assert sample(metrics, "tracardi_operator_installation_condition", **labels, condition="Ready") == 0
    assert sample(metrics, "tracardi_operator_installation_condition", **labels, condition="IndexHeadroomLow") == 0
    # A condition no longer in status loses its series.
    metrics.installation_status("acme", "a", "Ready", {"Degraded": "False", "Ready": "True"})
    assert sample(metrics, "tracardi_operator_installation_condition", **labels, condition="Degraded") == 0
    assert sample(metrics, "tracardi_operator_installation_condition", **labels, condition="IndexHeadroomLow") is None


def test_a_deleted_installations_phase_and_conditions_are_forgotten() -> None:
    metrics = new_metrics()
    metrics.installation_status("acme", "a", "Ready", {"Ready": "True", "Degraded": "False"})
    metrics.installation_status("acme", "b", "Ready", {"Ready": "True"})
    metrics.forget_installation("acme", "a")
    text = generate_latest(metrics.registry).decode()
    assert 'installation="a"' not in text
    assert sample(metrics, "tracardi_operator_installation_condition", namespace="acme", installation="b",
                  condition="Ready") == 1


def test_a_pass_that_reports_after_the_deletion_brings_no_series_back() -> None:
    """A pass under way when the installation's deletion arrives reports after it: its series would stay,
    and its alerts fire, for an installation that no longer exists."""
    metrics = new_metrics()
    labels = {"namespace": "acme", "installation": "a"}
    metrics.installation_status("acme", "a", "Ready", {"Ready": "True"})
    metrics.forget_installation("acme", "a")
    metrics.installation_status("acme", "a", "Degraded", {"Ready": "False", "Degraded": "True"})
    metrics.set_paused("acme", "a", True)
    metrics.gc_planned("acme", "a", 4)
    text = generate_latest(metrics.registry).decode()
    assert 'installation="a"' not in text
    assert sample(metrics, "tracardi_operator_installations_paused") == 0
    # One of that name created again is reported again.
    metrics.installation_seen("acme", "a")
    metrics.installation_status("acme", "a", "Progressing", {"Ready": "False"})
    assert sample(metrics, "tracardi_operator_installation_phase", **labels, phase="Progressing") == 1


def test_the_memory_of_deleted_installations_is_bounded() -> None:
    from tracardi_operator.metrics import RETIRED_MAX

    metrics = new_metrics()
    for i in range(RETIRED_MAX + 10):
        metrics.forget_installation("churn", f"i{i}")
    newest = f"i{RETIRED_MAX + 9}"
    metrics.installation_status("churn", newest, "Ready", {"Ready": "True"})  # still remembered: dropped
    assert sample(metrics, "tracardi_operator_installation_phase", namespace="churn", installation=newest,
                  phase="Ready") is None
    metrics.installation_status("churn", "i0", "Ready", {"Ready": "True"})  # the oldest was let go
    assert sample(metrics, "tracardi_operator_installation_phase", namespace="churn", installation="i0",
                  phase="Ready") == 1
    metrics.installation_status("churn", f"i{RETIRED_MAX + 9}", "Ready", {"Ready": "True"})
    assert f'installation="i{RETIRED_MAX + 9}"' not in generate_latest(metrics.registry).decode()
