"""The monitoring manifests (manifests/monitoring/) as the tests read them: the alerts of the
PrometheusRule, the dashboard's queries, the metric names and labels a PromQL expression refers to, the
sample names and labels the operator exports (from `metrics.new_metrics()` or from a scrape of its
/metrics), and promtool (built by `python -m devenv.promtool`) to check and unit-test the rules.

References are found by their lexical shape, which is enough for the expressions we write: a selector
`tracardi_operator_…{label="…"}`, and the label lists of `by`, `on`, `without` and `ignoring`.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from devenv import promtool as promtool_build
from devenv.paths import State
from tracardi_operator import metrics as operator_metrics

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "manifests" / "monitoring"
PREFIX = operator_metrics.PREFIX

TARGET_LABELS = frozenset({"instance", "job"})
"""Labels Prometheus gives every series it scrapes, whatever the target exports."""

_NAME = re.compile(r"\b(" + PREFIX + r"_[a-z0-9_]+)\b\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")


# -- what the manifests say ------------------------------------------------------------------------


def prometheus_rule() -> dict[str, Any]:
    doc = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def alerts() -> list[dict[str, Any]]:
    return [rule for group in prometheus_rule()["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


def write_rules_file(into: Path) -> Path:
    """The PrometheusRule's `spec` as the plain rules file Prometheus and promtool read."""
    path = into / "rules.yaml"
    path.write_text(yaml.safe_dump(prometheus_rule()["spec"], sort_keys=False))
    return path


def dashboard() -> dict[str, Any]:
    doc = json.loads((MONITORING / "dashboard.json").read_text())
    assert isinstance(doc, dict)
    return doc


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard: the panels' targets and the template variables' queries."""
    found = []
    for node in _walk(dashboard()):
        if isinstance(node.get("expr"), str):
            found.append(node["expr"])
        if isinstance(node.get("definition"), str) and node["definition"]:
            found.append(node["definition"])
    return found


# -- what an expression refers to ------------------------------------------------------------------


@dataclass(frozen=True)
class References:
    selectors: dict[str, frozenset[str]]
    """Each metric named, with the labels its matchers use (the union over its occurrences)."""
    grouping: frozenset[str]
    """Labels of `by`, `on`, `without` and `ignoring` clauses."""


def references(expr: str) -> References:
    selectors: dict[str, set[str]] = {}
    for name, matchers in _NAME.findall(expr):
        selectors.setdefault(name, set()).update(_MATCHER.findall(matchers))
    # label_values(metric, label): the label is used as a grouping label would be.
    grouping = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    grouping |= set(re.findall(r"label_values\([^,]+,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)", expr))
    return References({k: frozenset(v) for k, v in selectors.items()}, frozenset(grouping))


def problems(expr: str, exported: Mapping[str, frozenset[str]]) -> list[str]:
    """What `expr` refers to that the operator does not export (sample name -> labels): unknown metric
    names, matcher labels the metric lacks, grouping labels none of its metrics has."""
    refs = references(expr)
    found = []
    if not refs.selectors:
        found.append(f"names no {PREFIX}_ metric")
    for name, labels in refs.selectors.items():
        if name not in exported:
            found.append(f"unknown metric {name}")
            continue
        if missing := labels - exported[name] - TARGET_LABELS:
            found.append(f"{name} has no label {sorted(missing)}")
    known = set(TARGET_LABELS).union(*(exported.get(name, frozenset()) for name in refs.selectors))
    if missing := refs.grouping - known:
        found.append(f"grouping by {sorted(missing)}, labels of none of {sorted(refs.selectors)}")
    return found


# -- what the operator exports ---------------------------------------------------------------------


def exported_by_code() -> dict[str, frozenset[str]]:
    """Sample name -> labels of every metric of `metrics.new_metrics()`: a counter's `_total`, a histogram's
    `_bucket` (with `le`), `_sum` and `_count`, a gauge's own name."""
    registry = operator_metrics.new_metrics()
    found: dict[str, frozenset[str]] = {}
    for value in vars(registry).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, labels, kind = value._name, frozenset(value._labelnames), value._type
        if kind == "counter":
            found[f"{name}_total"] = labels
        elif kind == "histogram":
            found.update({f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels})
        else:
            found[name] = labels
    return found


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float

    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The series: its name and its labels, sorted."""
        return self.name, tuple(sorted(self.labels.items()))


@dataclass(frozen=True)
class Scrape:
    """One answer of /metrics: the declared families (name -> type) and the samples."""

    families: dict[str, str]
    samples: list[Sample]

    def sample_names(self) -> set[str]:
        """Every sample name the families declare, whether or not a sample of it is present yet."""
        return {name + suffix for name, kind in self.families.items() for suffix in _SUFFIXES.get(kind, [""])}

    def kind(self, sample_name: str) -> str | None:
        """The type of the family a sample belongs to (counter, gauge, histogram, ...)."""
        for name, kind in self.families.items():
            if sample_name in {name + suffix for suffix in _SUFFIXES.get(kind, [""])}:
                return kind
        return None


_SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}


def parse_scrape(text: str) -> Scrape:
    families, samples = {}, []
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        samples += [Sample(s.name, dict(s.labels), float(s.value)) for s in family.samples
                    if not s.name.endswith("_created")]
    return Scrape(families, samples)


# -- promtool --------------------------------------------------------------------------------------


def promtool() -> Path | None:
    """devenv's promtool, if it was built (`make promtool` or `python -m devenv.promtool`)."""
    path = promtool_build.binary(State.default())
    return path if path.exists() else None


def run_promtool(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def series(name: str, labels: Mapping[str, str], values: str) -> dict[str, str]:
    """One input series of a `promtool test rules` file, e.g. values '0+1x30' or '1x30'."""
    matchers = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{matchers}}}", "values": values}


def rule_test(rules: Path, input_series: Iterable[dict[str, str]], alert_cases: Iterable[dict[str, Any]],
              interval: str = "1m") -> dict[str, Any]:
    """A `promtool test rules` file with one test: these series and these expected alerts."""
    return {
        "rule_files": [str(rules)],
        "evaluation_interval": interval,
        "tests": [{"interval": interval, "input_series": list(input_series), "alert_rule_test": list(alert_cases)}],
    }


def fires(alert: str, at: str, value: str = "", **labels: str) -> dict[str, Any]:
    """An expectation of `promtool test rules`: `alert` fires at `at` with these labels; `value` is how its
    annotations show `$value` (`with_annotations` renders them)."""
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": labels}], "value": value}


def quiet(alert: str, at: str = "40m") -> dict[str, Any]:
    """An expectation of `promtool test rules`: `alert` is not firing at `at`."""
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def render(template: str, labels: dict[str, str], value: str) -> str:
    """The annotation as Prometheus renders it, for the two forms our annotations use: `{{ $labels.x }}`
    and `{{ $value | <humanize function> }}` (the case gives the rendered value). Anything else fails, so
    a new form is not left unchecked; so does a label the alert does not have."""

    def one(found: re.Match[str]) -> str:
        expr = found.group(1)
        if expr.startswith("$labels."):
            name = expr.removeprefix("$labels.")
            assert name in labels, f"the annotation uses {expr}, the alert has {sorted(labels)}"
            return labels[name]
        assert re.fullmatch(r"\$value \| humanize(Duration|Percentage)?", expr), f"unchecked template {{{{ {expr} }}}}"
        assert value, "the case gives no rendered $value"
        return value

    return _TEMPLATE.sub(one, template)


def with_annotations(expectation: dict[str, Any]) -> dict[str, Any]:
    """The expectation as promtool reads it: each expected alert with its rendered annotations."""
    (rule,) = (r for r in alerts() if r["alert"] == expectation["alertname"])
    value = expectation.get("value", "")
    expected = [{**a, "exp_annotations": {k: render(v, a["exp_labels"], value) for k, v in rule["annotations"].items()}}
                for a in expectation["exp_alerts"]]
    return {k: v for k, v in expectation.items() if k != "value"} | {"exp_alerts": expected}
