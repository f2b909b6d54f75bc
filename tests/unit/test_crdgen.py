"""CRD generation: structural schemas, printer columns, CEL rules, determinism and the drift check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracardi_operator import crdgen
from tracardi_operator.models import INSTALLATION, RESOURCE_KINDS, RETENTION_POLICY, ResourceKind
from tracardi_operator.versions import TAG_REGEX

REPO = Path(__file__).resolve().parents[2]


def schema_of(kind: ResourceKind) -> dict[str, Any]:
    schema: dict[str, Any] = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "", in_list: bool = False) -> Iterator[tuple[str, dict[str, Any], bool]]:
    yield path, node, in_list
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}", in_list)
    if "items" in node:
        yield from walk(node["items"], f"{path}[]", True)
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}", in_list)


@pytest.mark.parametrize("kind", RESOURCE_KINDS, ids=lambda kind: kind.kind)
def test_schema_is_structural(kind: ResourceKind) -> None:
    nodes = list(walk(schema_of(kind)))
    assert len(nodes) > 20
    for path, node, _ in nodes:
        assert "$ref" not in node, path
        for keyword in ("oneOf", "allOf", "title", "nullable"):
            assert keyword not in node, (path, keyword)
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        assert node.get("additionalProperties", {}) is not False, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node, path
            assert node.get("type") in {"object", "array", "string", "integer", "boolean", "number"}, path
        if node.get("type") == "object":
            assert "properties" in node or "additionalProperties" in node or path == ".metadata", path
            assert not ("properties" in node and "additionalProperties" in node), path
            for required in node.get("required", []):
                assert required in node["properties"], path
        if node.get("type") == "array":
            assert "items" in node, path


@pytest.mark.parametrize("kind", RESOURCE_KINDS, ids=lambda kind: kind.kind)
def test_every_property_is_described(kind: ResourceKind) -> None:
    undocumented = [
        path
        for path, node, _ in walk(schema_of(kind))
        if path and not path.endswith(("[]", "}")) and path != ".metadata" and not node.get("description")
    ]
    assert undocumented == []


@pytest.mark.parametrize("kind", RESOURCE_KINDS, ids=lambda kind: kind.kind)
def test_no_defaults_inside_list_items(kind: ResourceKind) -> None:
    assert [path for path, node, in_list in walk(schema_of(kind)) if in_list and "default" in node] == []


def test_formats() -> None:
    nodes = {path: node for path, node, _ in walk(schema_of(INSTALLATION))}
    assert nodes[".spec.replicas.api"] == {
        "default": 1,
        "description": nodes[".spec.replicas.api"]["description"],
        "format": "int32",
        "minimum": 1,
        "type": "integer",
    }
    assert nodes[".status.observedGeneration"]["format"] == "int64"
    assert nodes[".status.conditions[].lastTransitionTime"]["format"] == "date-time"
    assert nodes[".status.versions[].supersededAt"]["format"] == "date-time"
    assert nodes[".status.conditions[].status"]["enum"] == ["True", "False", "Unknown"]
    assert nodes[".status.versions[].state"]["enum"] == ["Current", "Superseded", "Deleting", "Abandoned", "Deleted"]
    assert nodes[".spec.upgrade.strategy"]["enum"] == ["Online", "Offline"]
    assert nodes[".spec.resources.api.requests{}"]["x-kubernetes-int-or-string"] is True


def test_required_and_defaults_of_installation() -> None:
    schema = schema_of(INSTALLATION)
    spec = schema["properties"]["spec"]
    assert schema["required"] == ["spec"]
    assert sorted(spec["required"]) == ["elasticsearch", "installation", "redis", "version"]
    for section in ("upgrade", "retention", "images", "replicas", "resources", "gui"):
        assert spec["properties"][section]["default"] == {}, section
    assert spec["properties"]["elasticsearch"]["properties"]["hosts"]["minItems"] == 1
    assert "default" not in spec["properties"]["elasticsearch"]["properties"]["caSecretRef"]


def test_conditions_are_a_list_map() -> None:
    for kind in RESOURCE_KINDS:
        conditions = schema_of(kind)["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert "type" in conditions["items"]["required"]


def cel_rules(kind: ResourceKind) -> dict[str, list[dict[str, str]]]:
    return {
        path: node["x-kubernetes-validations"]
        for path, node, _ in walk(schema_of(kind))
        if "x-kubernetes-validations" in node
    }


def test_cel_rules() -> None:
    rules = cel_rules(INSTALLATION)
    assert set(rules) == {".spec", ".spec.elasticsearch.hosts", ".spec.env[]", ".spec.redis.url"}
    assert rules[".spec.redis.url"][0]["rule"] == "!self.contains('@')"
    assert "TENANT_NAME" in rules[".spec.env[]"][0]["rule"]
    (version_rule,) = rules[".spec"]
    assert version_rule["rule"] == f"self.version.matches('{TAG_REGEX}')"
    assert version_rule["fieldPath"] == ".version"
    assert "0.8.2.1" in version_rule["message"]
    assert set(cel_rules(RETENTION_POLICY)) == {
        ".spec.namespaceSelector.matchExpressions[]",
        ".spec.selector.matchExpressions[]",
        ".spec.namespaceSelector.matchLabels",
        ".spec.selector.matchLabels",
    }
    for kind in RESOURCE_KINDS:
        for validations in cel_rules(kind).values():
            for validation in validations:
                # CEL string literals would need backslashes doubled; keep rules free of them.
                assert "\\" not in validation["rule"]
                assert validation["message"]


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("0.8.1", True),
        ("0.8.2.1", True),
        ("0.8.2-rc2", True),
        ("0.9.0-dev", True),
        ("0.8", False),
        ("v0.8.1", False),
        ("0.08.1", False),
        ("0.8.1-beta", False),
        ("latest", False),
    ],
)
def test_version_rule_agrees_with_the_parser(tag: str, valid: bool) -> None:
    assert (re.fullmatch(TAG_REGEX, tag) is not None) is valid


def test_version_string_bounded_for_cel_cost() -> None:
    version = schema_of(INSTALLATION)["properties"]["spec"]["properties"]["version"]
    assert version["maxLength"] <= 64
    hosts = schema_of(INSTALLATION)["properties"]["spec"]["properties"]["elasticsearch"]["properties"]["hosts"]
    assert hosts["maxItems"]
    assert hosts["items"]["maxLength"]


def test_installation_crd_shape() -> None:
    crd = crdgen.crd(INSTALLATION)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "tracardiinstallations.tracardi.com"
    spec = crd["spec"]
    assert spec["group"] == "tracardi.com"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "TracardiInstallation",
        "listKind": "TracardiInstallationList",
        "plural": "tracardiinstallations",
        "singular": "tracardiinstallation",
        "shortNames": ["tri", "tracardi"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert list(columns) == ["Desired", "Running", "Phase", "Ready", "Age"]
    assert columns["Desired"]["jsonPath"] == ".spec.version"
    assert columns["Running"]["jsonPath"] == ".status.currentVersion"
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"]["type"] == "date"


def test_policy_crd_shape() -> None:
    crd = crdgen.crd(RETENTION_POLICY)
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["trp"]
    schema = schema_of(RETENTION_POLICY)
    assert "required" not in schema
    spec = schema["properties"]["spec"]
    assert spec["default"] == {}
    assert spec["properties"]["keepSupersededVersions"]["default"] == 1
    assert spec["properties"]["minAgeAfterSuperseded"]["default"] == "168h"
    assert spec["properties"]["minAgeAfterSuperseded"]["pattern"]
    assert spec["properties"]["maxDeletionsPerRun"]["minimum"] == 1
    operator = spec["properties"]["selector"]["properties"]["matchExpressions"]["items"]["properties"]["operator"]
    assert operator["enum"] == ["In", "NotIn", "Exists", "DoesNotExist"]


def test_render_is_deterministic_yaml_with_header() -> None:
    for kind in RESOURCE_KINDS:
        first, second = crdgen.render(kind), crdgen.render(kind)
        assert first == second
        assert first.startswith(crdgen.HEADER)
        assert yaml.safe_load(first) == crdgen.crd(kind)


def test_file_names() -> None:
    assert sorted(crdgen.rendered_files()) == [
        "tracardi.com_tracardiinstallations.yaml",
        "tracardi.com_tracardiretentionpolicies.yaml",
    ]


def test_committed_crds_are_up_to_date() -> None:
    assert crdgen.stale_files(REPO / "crds") == {}, "run: python -m tracardi_operator.crdgen"


def test_write_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "crds"
    assert crdgen.main(["--check", "--output-dir", str(directory)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert crdgen.main(["--output-dir", str(directory)]) == 0
    assert crdgen.main(["--check", "--output-dir", str(directory)]) == 0
    target = directory / "tracardi.com_tracardiinstallations.yaml"
    target.write_text(target.read_text().replace("tri\n", "trx\n"))
    capsys.readouterr()
    assert crdgen.main(["--check", "--output-dir", str(directory)]) == 1
    error = capsys.readouterr().err
    assert "tracardi.com_tracardiinstallations.yaml is out of date" in error
    assert "-    - trx" in error
    assert "+    - tri" in error
    assert "python -m tracardi_operator.crdgen" in error


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "anyOf"),
        ({"type": "object", "additionalProperties": False}, "additionalProperties"),
        ({"type": "string", "const": "x"}, "const"),
        ({"description": "no type"}, "no type"),
        ({"$ref": "#/$defs/Missing"}, "resolve"),
        ({"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}, ".x"),
    ],
)
def test_unstructural_schemas_are_refused(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(crdgen.SchemaError, match=re.escape(message)):
        crdgen.structural(schema, {})


def test_structural_inlines_and_flattens() -> None:
    definitions = {
        "Ref": {"type": "object", "title": "Ref", "description": "from type", "properties": {"a": {"type": "string"}}}
    }
    optional = {"anyOf": [{"$ref": "#/$defs/Ref"}, {"type": "null"}], "default": None, "description": "from field"}
    assert crdgen.structural(optional, definitions) == {
        "type": "object",
        "description": "from field",
        "properties": {"a": {"type": "string"}},
    }
