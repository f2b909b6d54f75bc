"""manifests/monitoring/ against a running operator: every metric and label the dashboard and the alerts
use is on its /metrics, and the alert rules, evaluated by `promtool test rules` on series made from two
scrapes of it (an installation Ready, the watch fresh), fire nothing; the same series with the watch
made stale fire TracardiOperatorWatchStale, and with the installation's Degraded condition made True fire
TracardiInstallationDegraded, so the rules match the labels the operator really exports. The
installation's own phase and condition series are there and say Ready.

The series carry the `instance` and `job` labels Prometheus would add, and hold each scraped gauge for
the 40 minutes evaluated; counters grow at the rate seen between the two scrapes.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Installations, OperatorProcess
from tests.monitoring import (
    Scrape,
    alerts,
    dashboard_queries,
    exported_by_code,
    fires,
    parse_scrape,
    problems,
    promtool,
    quiet,
    rule_test,
    run_promtool,
    series,
    with_annotations,
    write_rules_file,
)

MINUTES = 40
JOB = "tracardi-operator-metrics"
AGE = "tracardi_operator_last_watch_event_age_seconds"


def scrape(op: OperatorProcess) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/metrics", timeout=5) as answer:
        return parse_scrape(answer.read().decode())


def as_scraped(got: Scrape) -> dict[str, frozenset[str]]:
    """Sample name -> labels, as `got` shows them: the labels of its samples, or for a family declared
    with no sample yet (a labelled metric nothing has set), the labels metrics.py gives it."""
    by_code = exported_by_code()
    found: dict[str, set[str]] = {name: set() for name in got.sample_names()}
    for sample in got.samples:
        found[sample.name].update(sample.labels)
    return {name: frozenset(labels or by_code.get(name, frozenset())) for name, labels in found.items()}


def input_series(first: Scrape, second: Scrape, seconds: float, instance: str,
                 namespace: str) -> list[dict[str, str]]:
    """Each sample of `second` as a promtool input series over MINUTES, one point a minute: a gauge held,
    a counter (or a histogram's series) growing at the rate seen since `first`. Of the per-installation
    series only `namespace`'s: the operator is shared by the suite, and another test's installation may
    still be there while its namespace is deleted (not Ready, as its Deployments go)."""
    before = {s.key(): s.value for s in first.samples}
    made = []
    for s in second.samples:
        if s.labels.get("namespace", namespace) != namespace:
            continue
        labels = {**s.labels, "instance": instance, "job": JOB}
        if second.kind(s.name) in ("counter", "histogram"):
            per_minute = max(0.0, s.value - before.get(s.key(), s.value)) * 60 / seconds
            made.append(series(s.name, labels, f"{s.value:g}+{per_minute:g}x{MINUTES}"))
        else:
            made.append(series(s.name, labels, f"{s.value:g}x{MINUTES}"))
    return made


def changed(made: list[dict[str, str]], prefix: str, values: str, *parts: str) -> list[dict[str, str]]:
    """`made` with the values of the series that start with `prefix` and contain every one of `parts`
    replaced; at least one must."""
    hit = [i for i, s in enumerate(made) if s["series"].startswith(prefix) and all(p in s["series"] for p in parts)]
    assert hit, f"no series {prefix}...{parts}"
    return [{**s, "values": values} if i in hit else s for i, s in enumerate(made)]


def test_the_dashboard_and_alerts_match_what_a_running_operator_exports(
    operator: OperatorProcess, installations: Installations, tmp_path: Path
) -> None:
    installations.create("acme", "0.8.2.1")
    installations.wait_settled("acme", "0.8.2.1")
    first = scrape(operator)
    started = time.monotonic()

    # Every metric the dashboard and the alerts use is on /metrics, with the labels they use.
    exported = as_scraped(first)
    queries = [*dashboard_queries(), *(rule["expr"] for rule in alerts())]
    found = {expr: p for expr in queries if (p := problems(expr, exported))}
    assert not found, found
    # What a healthy operator shows: it leads, its watch is fresh, it reconciled.
    values = {s.key(): s.value for s in first.samples}
    assert [v for (name, _), v in values.items() if name == "tracardi_operator_leader"] == [1.0]
    assert values[("tracardi_operator_last_watch_event_age_seconds", ())] < 120
    assert values[("tracardi_operator_reconciliations_total", (("result", "ok"),))] >= 1

    # The rules on the scraped series: nothing fires; with the watch made stale, WatchStale does; with the
    # installation's Degraded condition made True (once the operator exports it), Degraded does.
    binary = promtool()
    if binary is None:
        pytest.skip("promtool is not built: `make promtool` (python -m devenv.promtool)")
    time.sleep(15)
    second = scrape(operator)
    instance = f"127.0.0.1:{operator.port}"
    healthy = input_series(first, second, time.monotonic() - started, instance, installations.namespace)
    rules = write_rules_file(tmp_path)
    tests = [
        ("the scraped operator", healthy, [quiet(rule["alert"], f"{MINUTES - 1}m") for rule in alerts()]),
        ("the scraped operator, its watch stale", changed(healthy, f"{AGE}{{", f"0+60x{MINUTES}"),
         [fires("TracardiOperatorWatchStale", "12m", "12m 0s", severity="warning", instance=instance, job=JOB)]),
    ]
    ns = installations.namespace
    mine = {(s.name, s.labels.get("phase") or s.labels.get("condition")): s.value for s in second.samples
            if s.labels.get("namespace") == ns and s.labels.get("installation") == "acme"}
    if mine:
        degraded = changed(healthy, "tracardi_operator_installation_condition{", f"1x{MINUTES}",
                           'condition="Degraded"', f'installation="acme",instance="{instance}"')
        tests.append(("the scraped installation, Degraded", degraded, [
            quiet("TracardiInstallationDegraded", "14m"),
            fires("TracardiInstallationDegraded", "16m", severity="warning", namespace=ns, installation="acme")]))
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [
        {"name": name, **rule_test(rules, input_, map(with_annotations, expected))["tests"][0]}
        for name, input_, expected in tests]}))
    result = run_promtool(binary, "test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr

    # The installation's own series, as the reconcile pass reports them.
    assert mine, "no tracardi_operator_installation_* series of the Ready installation"
    assert mine[("tracardi_operator_installation_phase", "Ready")] == 1
    assert mine[("tracardi_operator_installation_condition", "Ready")] == 1
    assert mine[("tracardi_operator_installation_condition", "Degraded")] == 0
