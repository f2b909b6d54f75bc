"""manifests/monitoring/: the dashboard and the alerts refer only to what the operator exports, every
alert says what to do, the rules pass `promtool check rules`, and `promtool test rules` shows each alert
firing when it should and staying quiet otherwise (series made up here; tests/e2e/test_monitoring.py
evaluates the same rules on a scrape of a running operator).

The promtool tests are skipped when promtool is not built (`make promtool`; `make test` builds it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring import (
    MONITORING,
    alerts,
    dashboard,
    dashboard_queries,
    exported_by_code,
    fires,
    problems,
    promtool,
    quiet,
    rule_test,
    run_promtool,
    series,
    with_annotations,
    write_rules_file,
)

README = MONITORING.parents[1] / "README.md"


# -- references ------------------------------------------------------------------------------------


def test_the_dashboard_queries_only_metrics_and_labels_the_operator_exports() -> None:
    exported = exported_by_code()
    queries = dashboard_queries()
    assert len(queries) >= 15
    found = {q: p for q in queries if (p := problems(q, exported))}
    assert not found, found


def test_the_alerts_use_only_metrics_and_labels_the_operator_exports() -> None:
    exported = exported_by_code()
    found = {rule["alert"]: p for rule in alerts() if (p := problems(rule["expr"], exported))}
    assert not found, found


def test_the_reference_check_catches_what_does_not_exist() -> None:
    exported = exported_by_code()
    assert problems('sum by (phase) (tracardi_operator_installation_phase{namespace="a"})', exported) == []
    assert problems("tracardi_operator_reconciliations", exported) == [
        "unknown metric tracardi_operator_reconciliations"]
    assert problems('tracardi_operator_migrations_total{step="x"}', exported) == [
        "tracardi_operator_migrations_total has no label ['step']"]
    assert problems("sum by (verb) (tracardi_operator_migrations_total)", exported) == [
        "grouping by ['verb'], labels of none of ['tracardi_operator_migrations_total']"]
    assert problems("up == 0", exported) == ["names no tracardi_operator_ metric"]


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    names = " ".join(dashboard_queries())
    for metric in ("installation_phase", "upgrade_step_duration_seconds_bucket", "migrations_total",
                   "gc_indices_planned", "gc_indices_deleted_total", "reconciliations_total",
                   "last_watch_event_age_seconds", "api_requests_total"):
        assert f"tracardi_operator_{metric}" in names, metric
    assert "histogram_quantile(" in names


# -- the dashboard as Grafana reads it ----------------------------------------------------------------


def test_the_dashboard_asks_for_its_prometheus_data_source() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    (variable,) = (v for v in board["templating"]["list"] if v["type"] == "datasource")
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    text = (MONITORING / "dashboard.json").read_text()
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', text)) - {board["uid"]}
    assert uids == {"${datasource}"}, "a hard-coded data source"
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, p["title"]
        cells |= mine


# -- the alerts as a person reads them -----------------------------------------------------------------


def test_every_alert_has_a_severity_and_says_what_to_do() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        assert annotations["description"].strip(), rule["alert"]
        assert "kubectl " in annotations["description"], rule["alert"]


def test_installation_alerts_point_at_kubectl_describe_and_the_readme() -> None:
    readme = README.read_text()
    assert "## Troubleshooting by condition" in readme
    for rule in alerts():
        if "installation" in rule["expr"]:
            text = rule["annotations"]["description"]
            assert "kubectl describe tracardiinstallation" in text or "kubectl get tri" in text, rule["alert"]
            assert '"Troubleshooting by condition" in the operator\'s README' in text, rule["alert"]


def test_the_degraded_alert_waits_15_minutes() -> None:
    (degraded,) = (r for r in alerts() if r["alert"] == "TracardiInstallationDegraded")
    assert degraded["for"] == "15m"


# -- the kustomization ---------------------------------------------------------------------------------


def test_kustomize_builds_the_rule_the_service_monitor_and_the_dashboard(tmp_path: Path) -> None:
    kubectl = MONITORING.parents[1] / ".devenv" / "bin" / "kubectl"
    binary = str(kubectl) if kubectl.exists() else shutil.which("kubectl")
    if binary is None:
        pytest.skip("no kubectl: `make devenv-up` builds .devenv/bin/kubectl")
    result = subprocess.run([binary, "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    built = {doc["kind"]: doc for doc in yaml.safe_load_all(result.stdout) if doc}
    assert sorted(built) == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    config_map = built["ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"]["tracardi-operator.json"] == (MONITORING / "dashboard.json").read_text()
    assert {doc["metadata"]["namespace"] for doc in built.values()} == {"tracardi-operator"}


def test_the_service_monitor_selects_the_metrics_service_of_the_base() -> None:
    service = yaml.safe_load((MONITORING.parent / "service.yaml").read_text())
    base = yaml.safe_load((MONITORING.parent / "kustomization.yaml").read_text())
    labels = dict(service["metadata"].get("labels") or {})
    for entry in base.get("labels", []):
        labels.update(entry["pairs"])
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [port["name"]]


# -- promtool --------------------------------------------------------------------------------------


@pytest.fixture
def promtool_binary() -> Path:
    binary = promtool()
    if binary is None:
        pytest.skip("promtool is not built: `make promtool` (python -m devenv.promtool)")
    return binary


def test_promtool_checks_the_rules(promtool_binary: Path, tmp_path: Path) -> None:
    result = run_promtool(promtool_binary, "check", "rules", write_rules_file(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


LEADER = "10.0.0.1:8080"
STANDBY = "10.0.0.2:8080"
JOB = "tracardi-operator-metrics"


def target(instance: str = LEADER) -> dict[str, str]:
    return {"instance": instance, "job": JOB}


def leader(value: int, instance: str = LEADER) -> dict[str, str]:
    return series("tracardi_operator_leader", {"identity": instance.split(":")[0], **target(instance)}, f"{value}x60")


def condition(type_: str, value: int, instance: str = LEADER, name: str = "a") -> dict[str, str]:
    labels = {"namespace": "acme", "installation": name, "condition": type_, **target(instance)}
    return series("tracardi_operator_installation_condition", labels, f"{value}x60")


INSTALLATION = {"namespace": "acme", "installation": "a"}
CASES: dict[str, list[tuple[str, list[dict[str, str]], list[dict[str, Any]]]]] = {
    "TracardiInstallationDegraded": [
        ("Degraded for 15 minutes", [leader(1), condition("Degraded", 1)],
         [quiet("TracardiInstallationDegraded", "14m"),
          fires("TracardiInstallationDegraded", "16m", severity="warning", **INSTALLATION)]),
        ("not Degraded", [leader(1), condition("Degraded", 0)], [quiet("TracardiInstallationDegraded")]),
        ("only a replica that lost the Lease still says Degraded",
         [leader(1), condition("Degraded", 0), leader(0, STANDBY), condition("Degraded", 1, STANDBY)],
         [quiet("TracardiInstallationDegraded")]),
    ],
    "TracardiInstallationNotReady": [
        ("not Ready, nothing under way",
         [leader(1), condition("Ready", 0), condition("Progressing", 0), condition("Paused", 0)],
         [quiet("TracardiInstallationNotReady", "14m"),
          fires("TracardiInstallationNotReady", "16m", severity="critical", **INSTALLATION)]),
        ("not Ready during an upgrade", [leader(1), condition("Ready", 0), condition("Progressing", 1)],
         [quiet("TracardiInstallationNotReady")]),
        ("not Ready while paused", [leader(1), condition("Ready", 0), condition("Paused", 1)],
         [quiet("TracardiInstallationNotReady")]),
        ("Ready", [leader(1), condition("Ready", 1), condition("Progressing", 0)],
         [quiet("TracardiInstallationNotReady")]),
    ],
    "TracardiIndexHeadroomLow": [
        ("shards near the limit", [leader(1), condition("IndexHeadroomLow", 1)],
         [quiet("TracardiIndexHeadroomLow", "14m"),
          fires("TracardiIndexHeadroomLow", "16m", severity="warning", **INSTALLATION)]),
        ("enough shards", [leader(1), condition("IndexHeadroomLow", 0)], [quiet("TracardiIndexHeadroomLow")]),
    ],
    "TracardiOperatorWatchStale": [
        # The age grows by 60 s a minute: above 300 s from minute 6, firing 5 minutes later.
        ("no watch event since", [series("tracardi_operator_last_watch_event_age_seconds", target(), "0+60x60")],
         [quiet("TracardiOperatorWatchStale", "10m"),
          fires("TracardiOperatorWatchStale", "12m", "12m 0s", severity="warning", **target())]),
        ("the heartbeat keeps the age low",
         [series("tracardi_operator_last_watch_event_age_seconds", target(), " ".join(["0 60"] * 8))],
         [quiet("TracardiOperatorWatchStale", "15m")]),
    ],
    "TracardiOperatorNoLeader": [
        ("both replicas stand by", [leader(0), leader(0, STANDBY)],
         [quiet("TracardiOperatorNoLeader", "4m"), fires("TracardiOperatorNoLeader", "6m", severity="critical")]),
        ("one leads", [leader(1), leader(0, STANDBY)], [quiet("TracardiOperatorNoLeader")]),
    ],
    "TracardiOperatorAbsent": [
        ("nothing scraped", [series("up", {"job": "other", "instance": "x:1"}, "1x60")],
         [quiet("TracardiOperatorAbsent", "9m"), fires("TracardiOperatorAbsent", "11m", severity="critical")]),
        ("scraped", [series("tracardi_operator_last_watch_event_age_seconds", target(), "10x60")],
         [quiet("TracardiOperatorAbsent")]),
    ],
    "TracardiOperatorReconcileRetries": [
        ("half the passes retried",
         [series("tracardi_operator_reconciliations_total", {"result": "ok", **target()}, "0+2x60"),
          series("tracardi_operator_reconciliations_total", {"result": "retry", **target()}, "0+2x60")],
         [quiet("TracardiOperatorReconcileRetries", "14m"),
          fires("TracardiOperatorReconcileRetries", "20m", "50%", severity="warning")]),
        ("a retry now and then",
         [series("tracardi_operator_reconciliations_total", {"result": "ok", **target()}, "0+10x60"),
          series("tracardi_operator_reconciliations_total", {"result": "retry", **target()}, "0+0.5x60")],
         [quiet("TracardiOperatorReconcileRetries")]),
        ("no passes at all", [series("tracardi_operator_reconciliations_total", {"result": "ok", **target()}, "5x60")],
         [quiet("TracardiOperatorReconcileRetries")]),
    ],
}


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet() -> None:
    assert set(CASES) == {rule["alert"] for rule in alerts()}
    for alert, cases in CASES.items():
        expectations = [e for _, _, es in cases for e in es if e["alertname"] == alert]
        assert any(e["exp_alerts"] for e in expectations), alert
        assert any(not e["exp_alerts"] for e in expectations), alert


def test_each_alert_fires_when_it_should_and_not_otherwise(promtool_binary: Path, tmp_path: Path) -> None:
    rules = write_rules_file(tmp_path)
    tests = []
    for alert, cases in CASES.items():
        for name, input_series, expected in cases:
            test = rule_test(rules, input_series, map(with_annotations, expected))["tests"][0]
            tests.append({"name": f"{alert}: {name}", **test})
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}))
    result = run_promtool(promtool_binary, "test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_fails_a_wrong_expectation(promtool_binary: Path, tmp_path: Path) -> None:
    """The harness can fail: an alert expected where none fires is reported."""
    rules = write_rules_file(tmp_path)
    path = tmp_path / "tests.yaml"
    expected = with_annotations(fires("TracardiInstallationDegraded", "16m", severity="warning", **INSTALLATION))
    path.write_text(yaml.safe_dump(rule_test(rules, [leader(1), condition("Degraded", 0)], [expected])))
    result = run_promtool(promtool_binary, "test", "rules", path)
    assert result.returncode != 0
    assert "TracardiInstallationDegraded" in result.stdout + result.stderr


def test_promtool_is_stamped_with_the_release_of_the_pinned_module() -> None:
    from devenv import promtool as build

    assert build.release((build.PROMTOOL_MODULE / "go.mod").read_text()) == "3.16.0"
    assert build.release("require github.com/prometheus/prometheus v0.305.2\n") == "3.5.2"
