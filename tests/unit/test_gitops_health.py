"""The GitOps health checks of manifests/gitops/ against status objects of TracardiInstallations.

The Argo CD Lua check runs in real Lua interpreters from Debian's packages: 5.1, the dialect of the
gopher-lua that Argo CD embeds, and 5.4 (catches 5.1-only idioms). The Flux CEL expressions run in
cel-python, following Flux's evaluation order (RFC 0009). Both must agree on every fixture.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel

from tracardi_operator.models import TracardiInstallation

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "manifests" / "gitops"
LUA_SCRIPT = GITOPS / "argocd-health.lua"
FIXTURES = ROOT / "tests" / "fixtures" / "status"
LUA_INTERPRETERS = ("lua5.1", "lua5.4")


def fixture(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return obj


# ---- Lua ---------------------------------------------------------------------------------------


def to_lua(value: Any) -> str:
    """A Lua literal for a JSON value, as Argo CD hands the object to the script (null: absent)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        assert math.isfinite(value)
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(ch if ch.isprintable() and ch not in '"\\' else f"\\{ord(ch):03d}" for ch in value)
        return f'"{escaped}"'
    if isinstance(value, list):
        assert None not in value, "null inside a list has no Lua equivalent"
        return "{" + ", ".join(to_lua(item) for item in value) + "}"
    if isinstance(value, dict):
        fields = (f"[{to_lua(key)}] = {to_lua(item)}" for key, item in value.items() if item is not None)
        return "{" + ", ".join(fields) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


def interpreter(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `apt-get install -y {name}` (Debian package {name})")
    return path


def argocd_health(obj: dict[str, Any], lua: str = "lua5.4") -> tuple[str, str]:
    """(status, message) as Argo CD would compute them from the script."""
    harness = (
        f"obj = {to_lua(obj)}\n"
        f"local hs = dofile({to_lua(str(LUA_SCRIPT))})\n"
        'io.write(hs.status, "\\n", hs.message or "")\n'
    )
    result = subprocess.run(
        [interpreter(lua), "-"], input=harness, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    status, _, message = result.stdout.partition("\n")
    return status, message


@pytest.mark.parametrize("lua", LUA_INTERPRETERS)
@pytest.mark.parametrize(
    ("name", "status", "says"),
    [
        ("ready", "Healthy", "Tracardi 0.8.1 is ready"),
        ("progressing", "Progressing", "Migrating: Migration Job acme-migrate-080-to-08x is copying"),
        ("degraded", "Degraded", "MigrationTaskFailed: Migration Job acme-migrate-080-to-08x failed"),
        ("paused", "Suspended", "PausedBySpec: spec.paused is true"),
        ("stale-generation", "Progressing", "Waiting for the operator to observe generation 4 (observed 3)"),
    ],
)
def test_argocd_health_of_fixtures(lua: str, name: str, status: str, says: str) -> None:
    actual_status, message = argocd_health(fixture(name), lua)
    assert actual_status == status
    assert message.startswith(says), message


def test_argocd_health_without_status_is_progressing() -> None:
    obj = fixture("ready")
    del obj["status"]
    assert argocd_health(obj) == ("Progressing", "Waiting for the operator to report status")


def test_argocd_health_ready_but_another_version_is_progressing() -> None:
    # Observed, Ready (the old version serves), nothing says Progressing yet: still not Healthy.
    obj = fixture("ready")
    obj["spec"]["version"] = "0.8.2.1"
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Progressing":
            condition["status"] = "Unknown"
    assert argocd_health(obj) == ("Progressing", "Moving from 0.8.1 to 0.8.2.1")


def test_argocd_health_ready_condition_of_an_older_generation_is_not_healthy() -> None:
    obj = fixture("ready")
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] = 4
    assert argocd_health(obj)[0] == "Progressing"


def test_argocd_health_without_condition_generations_trusts_status_generation() -> None:
    obj = fixture("ready")
    for condition in obj["status"]["conditions"]:
        del condition["observedGeneration"]
    assert argocd_health(obj)[0] == "Healthy"


def test_argocd_health_paused_wins_over_degraded() -> None:
    obj = fixture("degraded")
    paused = fixture("paused")["status"]["conditions"][3]
    obj["status"]["conditions"][3] = dict(paused, observedGeneration=3)
    assert argocd_health(obj)[0] == "Suspended"


def test_to_lua_escapes_strings() -> None:
    assert to_lua('a "quoted"\nline\\') == '"a \\034quoted\\034\\010line\\092"'
    assert to_lua({"a": None, "b": [1, 2.5, True]}) == '{["b"] = {1, 2.5, true}}'


def test_argocd_cm_patch_embeds_the_script_verbatim() -> None:
    patch = yaml.safe_load((GITOPS / "argocd-cm-patch.yaml").read_text())
    assert patch["kind"] == "ConfigMap"
    assert patch["metadata"] == {**patch["metadata"], "name": "argocd-cm", "namespace": "argocd"}
    embedded = patch["data"]["resource.customizations.health.tracardi.com_TracardiInstallation"]
    assert embedded == LUA_SCRIPT.read_text()


# ---- Flux CEL ----------------------------------------------------------------------------------


def flux_check() -> dict[str, str]:
    kustomization = yaml.safe_load((GITOPS / "flux-healthcheck.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    (check,) = kustomization["spec"]["healthCheckExprs"]
    assert (check["apiVersion"], check["kind"]) == ("tracardi.com/v1alpha1", "TracardiInstallation")
    assert {"current", "failed", "inProgress"} <= check.keys()
    return {key: str(value) for key, value in check.items()}


def flux_health(obj: dict[str, Any]) -> str:
    """Flux's status for `obj` (fluxcd/pkg runtime/cel StatusEvaluator): the generation check, then
    inProgress, failed and current in that order, InProgress when none holds."""
    status = obj.get("status", {})
    if "observedGeneration" in status and status["observedGeneration"] != obj["metadata"].get("generation"):
        return "InProgress"
    env = celpy.Environment()
    activation = {key: json_to_cel(value) for key, value in obj.items()}
    check = flux_check()
    for key, outcome in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")):
        result = env.program(env.compile(check[key])).evaluate(activation)
        assert isinstance(result, celpy.celtypes.BoolType), f"{key} gave {result!r}"
        if result:
            return outcome
    return "InProgress"


ARGO_TO_FLUX = {"Healthy": "Current", "Degraded": "Failed", "Progressing": "InProgress", "Suspended": "InProgress"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ready", "Current"),
        ("progressing", "InProgress"),
        ("degraded", "Failed"),
        ("paused", "InProgress"),
        ("stale-generation", "InProgress"),
    ],
)
def test_flux_health_of_fixtures_agrees_with_argocd(name: str, expected: str) -> None:
    obj = fixture(name)
    assert flux_health(obj) == expected
    assert ARGO_TO_FLUX[argocd_health(obj)[0]] == expected


def test_flux_current_needs_the_requested_version_even_when_generations_match() -> None:
    obj = fixture("ready")
    obj["spec"]["version"] = "0.8.2.1"
    assert flux_health(obj) == "InProgress"


def test_flux_expressions_do_not_depend_on_evaluation_order() -> None:
    # Each expression stands alone (another tool may evaluate them in another order): at most one holds.
    check = flux_check()
    env = celpy.Environment()
    for name in ("ready", "progressing", "degraded", "paused", *REAL):
        activation = {key: json_to_cel(value) for key, value in fixture(name).items()}
        held = [
            key
            for key in ("inProgress", "failed", "current")
            if env.program(env.compile(check[key])).evaluate(activation)
        ]
        assert len(held) <= 1, (name, held)


# ---- real status objects -----------------------------------------------------------------------
# Captured from the end-to-end run (tests/e2e/test_rbac.py, the operator as its ServiceAccount on devenv;
# TRACARDI_UPDATE_STATUS_FIXTURES=1 rewrites them): what the operator really writes, not what we think
# it writes. Mid-upgrade, the old version still serves (Ready=True) while spec.version is the new one.

REAL = {
    "real-ready": ("Healthy", "Current"),
    "real-progressing": ("Progressing", "InProgress"),
    "real-degraded": ("Degraded", "Failed"),
}


def condition_of(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    (found,) = (c for c in obj["status"]["conditions"] if c["type"] == type_)
    return dict(found)


def test_real_fixtures_are_untouched_captures_of_one_generation() -> None:
    for name in REAL:
        obj = fixture(name)
        meta = obj["metadata"]
        assert {"uid", "resourceVersion", "creationTimestamp", "namespace", "generation"} <= meta.keys(), name
        assert "managedFields" not in meta, f"{name}: trim managedFields"
        assert obj["status"]["observedGeneration"] == meta["generation"], name
    ready, progressing, degraded = (fixture(name) for name in REAL)
    assert ready["status"]["currentVersion"] == ready["spec"]["version"] == "0.8.1"
    assert [v["state"] for v in ready["status"]["versions"]] == ["Superseded", "Current"]
    # Mid-upgrade: asked for 0.8.1, 0.8.0 still current and serving, an upgrade step under way.
    assert (progressing["spec"]["version"], progressing["status"]["currentVersion"]) == ("0.8.1", "0.8.0")
    assert condition_of(progressing, "Ready")["status"] == "True"
    assert condition_of(progressing, "Progressing")["status"] == "True"
    assert progressing["status"]["upgrade"]["step"]
    assert condition_of(degraded, "Degraded")["status"] == "True"
    assert {"name": "TRACARDI_SIM_FAULTS", "value": "install-partial"} in degraded["spec"]["env"]


def expected_argocd_message(name: str, obj: dict[str, Any]) -> str:
    if name == "real-ready":
        return f"Tracardi {obj['spec']['version']} is ready"
    c = condition_of(obj, "Progressing" if name == "real-progressing" else "Degraded")
    return f"{c['reason']}: {c['message']}"


@pytest.mark.parametrize("lua", LUA_INTERPRETERS)
@pytest.mark.parametrize("name", sorted(REAL))
def test_argocd_health_of_real_objects(lua: str, name: str) -> None:
    obj = fixture(name)
    assert argocd_health(obj, lua) == (REAL[name][0], expected_argocd_message(name, obj))


@pytest.mark.parametrize("name", sorted(REAL))
def test_flux_health_of_real_objects(name: str) -> None:
    obj = fixture(name)
    assert flux_health(obj) == REAL[name][1]
    assert ARGO_TO_FLUX[argocd_health(obj)[0]] == REAL[name][1]


def test_real_ready_object_of_another_spec_version_is_not_healthy() -> None:
    # The same real object the moment after someone bumps spec.version (before the operator reacts).
    obj = fixture("real-ready")
    obj["spec"]["version"] = "0.8.2.1"
    obj["metadata"]["generation"] += 1
    assert argocd_health(obj)[0] == "Progressing"
    assert flux_health(obj) == "InProgress"


# ---- the fixtures themselves -------------------------------------------------------------------


def unknown_keys(given: Any, parsed: Any, path: str = "") -> list[str]:
    """Keys of `given` missing from `parsed`: fields the model does not know (and would ignore)."""
    if isinstance(given, dict):
        return [
            missing
            for key, value in given.items()
            for missing in (
                [f"{path}.{key}"] if key not in parsed else unknown_keys(value, parsed[key], f"{path}.{key}")
            )
        ]
    if isinstance(given, list):
        return [
            m for i, (a, b) in enumerate(zip(given, parsed, strict=True)) for m in unknown_keys(a, b, f"{path}[{i}]")
        ]
    return []


def test_unknown_keys_finds_fields_the_model_ignores() -> None:
    assert unknown_keys({"a": 1, "b": [{"c": 1, "d": 2}]}, {"a": 1, "b": [{"c": 1}]}) == [".b[0].d"]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_fixtures_are_valid_installations(path: Path) -> None:
    obj = json.loads(path.read_text())
    parsed = TracardiInstallation.model_validate(obj)
    assert unknown_keys(obj["status"], parsed.status.to_k8s()) == []
    assert unknown_keys(obj["spec"], parsed.spec.to_k8s()) == []
