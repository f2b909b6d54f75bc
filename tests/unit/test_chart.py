"""The Helm chart (charts/tracardi-operator/): its version is the operator's, its CRDs are the generated
ones, `helm lint` passes, values.schema.json refuses wrong values, non-default values land where they
should, and with the defaults it renders the same objects as `kubectl kustomize manifests/`: the
kustomize base and the chart are two spellings of one set of objects, and this test is what keeps them
one (a change to either alone fails it, with a diff).

helm is built by `make helm` (`python -m devenv.helm`, which `make test` runs) into devenv's bin/;
kubectl is devenv's (`make devenv-up`)."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv import helm
from devenv.paths import State
from tracardi_operator import crdgen

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tracardi-operator"
NAMESPACE = "tracardi-operator"
RELEASE = "tracardi-operator"

HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
               "app.kubernetes.io/version")
"""The labels Helm charts add by convention; manifests/ has no release, chart or manager to name."""

Key = tuple[str, str, str]  # kind, name, namespace ("" when cluster-scoped)


def helm_binary() -> str:
    binary = helm.binary(State.default())
    if not binary.exists():
        pytest.skip(f"no helm at {binary}: `make helm` (python -m devenv.helm) builds it; `make test` runs it")
    return str(binary)


def kubectl_binary() -> str:
    local = State.default().bin / "kubectl"
    found = str(local) if local.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("no kubectl: `make devenv-up` builds it into devenv's bin/")
    return found


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False)


def template(*args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[Key, dict[str, Any]]:
    """`helm template` of the chart, as (kind, name, namespace) -> object."""
    done = run_helm("template", release, str(CHART), "--namespace", namespace, *args)
    assert done.returncode == 0, done.stderr
    return by_key(yaml.safe_load_all(done.stdout))


def values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def by_key(docs: Any) -> dict[Key, dict[str, Any]]:
    objects: dict[Key, dict[str, Any]] = {}
    for doc in docs:
        if doc:
            key = (doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace", ""))
            assert key not in objects, f"{key} twice"
            objects[key] = doc
    return objects


def without_helm_labels(node: Any) -> Any:
    """A copy with HELM_LABELS removed from every object's and pod template's metadata.labels."""
    if isinstance(node, list):
        return [without_helm_labels(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: without_helm_labels(value) for key, value in node.items()}
    labels = copy.get("metadata", {}).get("labels") if isinstance(copy.get("metadata"), dict) else None
    if isinstance(labels, dict):
        copy["metadata"]["labels"] = {k: v for k, v in labels.items() if k not in HELM_LABELS}
    return copy


def container(objects: dict[Key, dict[str, Any]], name: str = RELEASE,
              namespace: str = NAMESPACE) -> dict[str, Any]:
    (only,) = objects[("Deployment", name, namespace)]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(objects: dict[Key, dict[str, Any]], name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects, name, namespace)["env"]}


# ---- the chart itself ----------------------------------------------------------------------------


def test_chart_version_and_app_version_are_the_operators() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert chart["name"] == "tracardi-operator"
    assert chart["version"] == version
    assert chart["appVersion"] == version


def test_chart_crds_are_exactly_the_generated_ones() -> None:
    """The chart's crds/ is written by `make crds` like crds/; nobody keeps it by hand."""
    assert crdgen.CHART_CRDS in crdgen.DEFAULT_OUTPUT_DIRS
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(crdgen.rendered_files())
    assert crdgen.stale_files(CHART / "crds") == {}, "run `make crds`"
    for name, text in crdgen.rendered_files().items():
        assert (ROOT / "crds" / name).read_text() == text == (CHART / "crds" / name).read_text()


def test_values_schema_is_draft_07_and_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    for key in ("image", "resources", "serviceAccount", "metrics"):
        assert schema["properties"][key]["additionalProperties"] is False, key
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert sorted(values) == sorted(schema["properties"]), "every value is described, and only those"


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint(strict: bool) -> None:
    done = run_helm("lint", str(CHART), *(["--strict"] if strict else []))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


# ---- one source of truth -------------------------------------------------------------------------


def test_default_render_is_the_kustomize_base() -> None:
    """Every object of `kubectl kustomize manifests/` but the Namespace (`helm install --create-namespace`)
    and the CRDs (the chart's crds/, checked above), field for field, once Helm's conventional labels are
    removed; and nothing else."""
    built = subprocess.run([kubectl_binary(), "kustomize", str(ROOT / "manifests")], capture_output=True,
                           text=True, timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    kustomized = {key: obj for key, obj in by_key(yaml.safe_load_all(built.stdout)).items()
                  if key[0] not in ("Namespace", "CustomResourceDefinition")}
    rendered = {key: without_helm_labels(obj) for key, obj in template().items()}
    assert sorted(rendered) == sorted(kustomized)
    differences = []
    for key in sorted(kustomized):
        if rendered[key] != kustomized[key]:
            differences += difflib.unified_diff(
                yaml.safe_dump(kustomized[key], sort_keys=True).splitlines(),
                yaml.safe_dump(rendered[key], sort_keys=True).splitlines(),
                fromfile=f"kubectl kustomize manifests/: {'/'.join(key)}",
                tofile=f"helm template charts/tracardi-operator: {'/'.join(key)}", lineterm="")
    assert not differences, "manifests/ and the chart differ; change both:\n" + "\n".join(differences)


def test_default_render_carries_helm_labels_on_every_object() -> None:
    for key, obj in template().items():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", key
        assert labels["app.kubernetes.io/instance"] == RELEASE, key
        assert labels["helm.sh/chart"] == "tracardi-operator-0.1.0", key


# ---- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "replicas=two"], "/replicas"),
    (["--set", "replica=2"], "additional properties 'replica' not allowed"),
    (["--set", "logLevel=LOUD"], "/logLevel"),
    (["--set", "logFormat=xml"], "/logFormat"),
    (["--set", "image.digest=latest"], "/image/digest"),
    (["--set", "image.tags=1.0"], "additional properties 'tags' not allowed"),
    (["--set", "workers=0"], "/workers"),
    (["--set", "watchNamespaces={Not_A_Namespace}"], "/watchNamespaces/0"),
    (["--set", "leaderElection=false"], "/replicas"),  # two replicas without a leader would both act
    (["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false"],
     "/metrics/service/enabled"),
], ids=["replicas-string", "unknown-key", "log-level", "log-format", "digest", "unknown-image-key", "workers",
        "namespace-name", "two-replicas-no-election", "monitor-without-service"])
def test_schema_refuses(args: list[str], message: str) -> None:
    done = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert done.returncode != 0, f"{args} was accepted"
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr
    assert message in done.stderr, done.stderr


DIGEST = "sha256:" + "ab" * 32


def test_non_default_values(tmp_path: Path) -> None:
    objects = template("-f", values_file(tmp_path, {
        "image": {"repository": "registry.example/tracardi-operator", "digest": DIGEST, "pullPolicy": "Always",
                  "pullSecrets": ["registry-example"]},
        "replicas": 3,
        "watchNamespaces": ["tracardi", "tracardi-staging"],
        "logFormat": "text", "logLevel": "DEBUG", "workers": 16, "resyncSeconds": 60,
        "extraEnv": [{"name": "TRACARDI_OPERATOR_FLATTENED_CHECK", "value": "off"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}, "interval": "15s"}},
    }))
    deployment = objects[("Deployment", RELEASE, NAMESPACE)]
    pod = deployment["spec"]["template"]["spec"]
    c = container(objects)
    assert deployment["spec"]["replicas"] == 3
    assert c["image"] == f"registry.example/tracardi-operator@{DIGEST}"
    assert c["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "registry-example"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "podAntiAffinity" in pod["affinity"], "the default affinity stays unless removed"
    e = env(objects)
    assert e["TRACARDI_OPERATOR_JOB_IMAGE"] == c["image"], "the Jobs run the very image the operator runs"
    assert e["TRACARDI_OPERATOR_NAMESPACES"] == "tracardi,tracardi-staging"
    assert (e["LOG_FORMAT"], e["LOG_LEVEL"]) == ("text", "DEBUG")
    assert (e["TRACARDI_OPERATOR_WORKERS"], e["TRACARDI_OPERATOR_RESYNC_SECONDS"]) == ("16", "60")
    assert e["TRACARDI_OPERATOR_FLATTENED_CHECK"] == "off"
    assert "TRACARDI_OPERATOR_LEADER_ELECTION" not in e
    monitor = objects[("ServiceMonitor", RELEASE, NAMESPACE)]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    service = objects[("Service", f"{RELEASE}-metrics", NAMESPACE)]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["name"] == "metrics"


def test_defaults_have_no_service_monitor_and_name_the_tag() -> None:
    objects = template()
    assert not [key for key in objects if key[0] == "ServiceMonitor"]
    assert container(objects)["image"] == "tracardi-operator:0.1.0"
    assert "imagePullSecrets" not in objects[("Deployment", RELEASE, NAMESPACE)]["spec"]["template"]["spec"]
    e = env(template("--set", "image.tag=dev", "--set", "jobImage=mirror.example/tracardi-operator:dev"))
    assert e["TRACARDI_OPERATOR_JOB_IMAGE"] == "mirror.example/tracardi-operator:dev"


def test_one_replica_without_leader_election() -> None:
    objects = template("--set", "leaderElection=false", "--set", "replicas=1")
    assert env(objects)["TRACARDI_OPERATOR_LEADER_ELECTION"] == "off"
    assert not [key for key in objects if key[0] in ("Role", "RoleBinding")]


def test_another_release_name_and_namespace() -> None:
    """`helm install ops charts/tracardi-operator -n platform`: every name prefixed, the binding to the
    release's ServiceAccount in the release's namespace, the metrics Service still selecting the pods."""
    objects = template(release="ops", namespace="platform")
    name = "ops-tracardi-operator"
    assert sorted(objects) == sorted([
        ("ServiceAccount", name, "platform"), ("ClusterRole", name, ""), ("ClusterRoleBinding", name, ""),
        ("Role", f"{name}-leader-election", "platform"), ("RoleBinding", f"{name}-leader-election", "platform"),
        ("Service", f"{name}-metrics", "platform"), ("Deployment", name, "platform")])
    subject = {"kind": "ServiceAccount", "name": name, "namespace": "platform"}
    assert objects[("ClusterRoleBinding", name, "")]["subjects"] == [subject]
    assert objects[("RoleBinding", f"{name}-leader-election", "platform")]["subjects"] == [subject]
    deployment = objects[("Deployment", name, "platform")]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == name
    selector = objects[("Service", f"{name}-metrics", "platform")]["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
