"""The install manifests (manifests/, crds/kustomization.yaml) and the Dockerfile, read as text and YAML.

What a reviewer would check by eye: least privilege without wildcards and with a reason per rule, the
restricted security context, probes and resources, settings the operator really reads, samples the
API accepts, and an image that is pinned, non-root and free of compilers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracardi_operator import crdgen
from tracardi_operator import settings as settings_module
from tracardi_operator.models import TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
DOCKERFILE = ROOT / "Dockerfile"
UID = 65532


def docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def base() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object, for every resource file the base kustomization lists."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    objects = {}
    for entry in kustomization["resources"]:
        if entry == "../crds":
            continue
        for doc in docs(MANIFESTS / entry):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def deployment() -> dict[str, Any]:
    return base()[("Deployment", "tracardi-operator")]


def container() -> dict[str, Any]:
    (only,) = deployment()["spec"]["template"]["spec"]["containers"]
    return only


# ---- kustomization -----------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    files = sorted(MANIFESTS.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert docs(path), path


def test_base_lists_existing_files_and_the_generated_crds() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "tracardi-operator"
    assert "../crds" in kustomization["resources"]
    for entry in kustomization["resources"]:
        assert (MANIFESTS / entry).exists(), entry
    assert kustomization["images"] == [{"name": "tracardi-operator", "newTag": "0.1.0"}]


def test_crds_kustomization_lists_exactly_the_generated_crds() -> None:
    crds = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())
    assert sorted(crds["resources"]) == sorted(crdgen.rendered_files())


def kubectl() -> str | None:
    local = ROOT / ".devenv" / "bin" / "kubectl"
    return str(local) if local.exists() else shutil.which("kubectl")


@pytest.mark.parametrize("directory", ["manifests", "manifests/samples"])
def test_kustomize_build(directory: str, tmp_path: Path) -> None:
    binary = kubectl()
    if binary is None:
        pytest.skip("no kubectl: `make devenv-up` builds .devenv/bin/kubectl")
    # Build a copy whose crds/ is generated from the models now, so that this checks the manifests
    # whether or not crds/ was regenerated yet (check-crds guards that).
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    (tmp_path / "crds").mkdir()
    shutil.copy(ROOT / "crds" / "kustomization.yaml", tmp_path / "crds")
    for name, text in crdgen.rendered_files().items():
        (tmp_path / "crds" / name).write_text(text)
    result = subprocess.run(
        [binary, "kustomize", str(tmp_path / directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = sorted(doc["kind"] for doc in built)
    if directory == "manifests":
        assert kinds == sorted(
            ["CustomResourceDefinition"] * 2
            + ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
               "Deployment", "Service"]
        )
        (built_deployment,) = (doc for doc in built if doc["kind"] == "Deployment")
        assert built_deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "tracardi-operator:0.1.0"
    else:
        assert kinds == ["Namespace", "Secret", "Secret", "TracardiInstallation", "TracardiRetentionPolicy"]


# ---- RBAC --------------------------------------------------------------------------------------


def cluster_role() -> dict[str, Any]:
    return base()[("ClusterRole", "tracardi-operator")]


def test_no_wildcards_in_any_role() -> None:
    for path in MANIFESTS.rglob("*.yaml"):
        for doc in docs(path):
            for rule in doc.get("rules", []) if doc["kind"] in ("ClusterRole", "Role") else []:
                for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                    assert not any("*" in item for item in rule.get(key, [])), (path, rule)


def test_every_rule_says_why() -> None:
    text = (MANIFESTS / "rbac.yaml").read_text().splitlines()
    rule_starts = [i for i, line in enumerate(text) if re.match(r"^\s*- apiGroups:", line)]
    role = base()[("Role", "tracardi-operator-leader-election")]
    assert len(rule_starts) == len(cluster_role()["rules"]) + len(role["rules"])
    for i in rule_starts:
        assert "#" in text[i] or text[i - 1].lstrip().startswith("#"), f"rule at line {i + 1} has no comment"


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_operator_gets_exactly_what_it_needs() -> None:
    read = ("get", "list", "watch")
    expected = {
        *(
            ("tracardi.com", r, v)
            for r in ("tracardiinstallations", "tracardiretentionpolicies")
            for v in (*read, "patch")
        ),
        *(
            ("tracardi.com", f"{r}/status", v)
            for r in ("tracardiinstallations", "tracardiretentionpolicies")
            for v in ("get", "patch")
        ),
        ("tracardi.com", "tracardiinstallations/finalizers", "update"),
        *(("apps", "deployments", v) for v in (*read, "create", "patch", "delete")),
        *(("", "services", v) for v in (*read, "create", "patch", "delete")),
        *(("batch", "jobs", v) for v in (*read, "create", "delete")),
        *(("", "pods", v) for v in read),
        ("", "secrets", "get"),
        ("", "events", "create"),
        ("", "events", "list"),
        *(("", "namespaces", v) for v in read),
        *(("apiextensions.k8s.io", "customresourcedefinitions", v) for v in read),
    }
    assert grants(cluster_role()["rules"]) == expected


def test_binding_binds_the_operator_service_account() -> None:
    objects = base()
    binding = objects[("ClusterRoleBinding", "tracardi-operator")]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "tracardi-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tracardi-operator", "namespace": "tracardi-operator"}
    ]
    assert ("ServiceAccount", "tracardi-operator") in objects
    assert deployment()["spec"]["template"]["spec"]["serviceAccountName"] == "tracardi-operator"


# ---- Deployment and Service ----------------------------------------------------------------------


def test_two_replicas_that_elect_a_leader_in_their_own_namespace_only() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    env = {e["name"]: e for e in container()["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    role = base()[("Role", "tracardi-operator-leader-election")]
    assert role["metadata"]["namespace"] == "tracardi-operator"
    assert grants(role["rules"]) == {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
    assert not any("coordination.k8s.io" in rule["apiGroups"] for rule in cluster_role()["rules"])
    binding = base()[("RoleBinding", "tracardi-operator-leader-election")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tracardi-operator",
                                    "namespace": "tracardi-operator"}]
    settings = Settings.from_env({"POD_NAME": "op-1", "POD_NAMESPACE": "tracardi-operator"})
    assert (settings.identity, settings.lease_namespace, settings.leader_election) == (
        "op-1", "tracardi-operator", True)


def test_restricted_security_context() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    # The one writable path, /tmp, is an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_probes_and_resources() -> None:
    c = container()
    port = Settings().health_port
    assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}


def test_settings_in_env_are_the_ones_the_operator_reads() -> None:
    c = container()
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    settings = Settings.from_env(env)
    assert c["args"] == ["run"]
    assert settings.job_image == "tracardi-operator:0.1.0"  # the operator's own image, as in `images`
    assert settings.namespaces == ()
    assert settings.log_format == "json"
    assert settings.health_port == c["ports"][0]["containerPort"]
    assert settings.watch_stale_seconds == float(env["TRACARDI_OPERATOR_WATCH_STALE_SECONDS"])
    # Every variable in the manifest is one Settings reads (a typo would be silently ignored).
    source = Path(settings_module.__file__).read_text()
    for name in env:
        assert f'"{name}"' in source, f"{name} is not read by settings.py"


def test_metrics_service_selects_the_operator_pod() -> None:
    service = base()[("Service", "tracardi-operator-metrics")]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment()["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


# ---- samples -------------------------------------------------------------------------------------


def samples() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted((MANIFESTS / "samples").glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in docs(path)
    ]


def test_samples_are_accepted_by_the_api_models() -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in samples():
        by_kind.setdefault(doc["kind"], []).append(doc)
    (installation,) = by_kind["TracardiInstallation"]
    parsed = TracardiInstallation.model_validate(installation)
    assert parsed.spec.version == "0.8.1"
    (policy,) = by_kind["TracardiRetentionPolicy"]
    spec = TracardiRetentionPolicy.model_validate(policy).spec
    assert (spec.keep_superseded_versions, spec.min_age_after_superseded, spec.dry_run) == (1, "168h", True)

    # Every Secret the installation names exists in the samples, with the keys it is read for.
    secrets = {s["metadata"]["name"]: s["stringData"] for s in by_kind["Secret"]}
    assert len(secrets) == 2
    assert {"username", "password"} <= secrets[parsed.spec.elasticsearch.credentials_secret_ref.name].keys()  # type: ignore[union-attr]
    assert {"username", "password"} <= secrets[parsed.spec.installation.admin_secret_ref.name].keys()
    token = parsed.spec.installation.token_secret_ref
    assert token.key in secrets[token.name]
    # Placeholders nobody could mistake for real credentials.
    for data in secrets.values():
        assert data["password"] == "change-me"


# ---- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_stages() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults, and per stage its (INSTRUCTION, arguments) with continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, rest.strip()))
    return args, stages


def test_dockerfile_bases_are_pinned_to_exact_versions() -> None:
    args, stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: a builder and a final image"
    for stage in stages:
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        repository, _, tag = image.partition(":")
        assert repository == "python", image
        assert re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag), f"not an exact slim 3.11 tag: {image}"
    assert "latest" not in DOCKERFILE.read_text()
    assert "digest" in DOCKERFILE.read_text()  # the comment recommending a digest pin


def test_final_stage_runs_non_root_without_build_tools() -> None:
    _, stages = dockerfile_stages()
    final = stages[-1]
    users = [rest for instruction, rest in final if instruction == "USER"]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a numeric UID, so that runAsNonRoot can verify it"
    assert int(uid) == UID, "non-root, as runAsUser in deployment.yaml"
    body = " ".join(rest for _, rest in final).lower()
    for tool in ("gcc", "build-essential", "apt-get", "make ", "pip install"):
        assert tool not in body, tool
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final


def test_entrypoint_runs_the_operator_and_exposes_the_health_port() -> None:
    _, stages = dockerfile_stages()
    final = dict(stages[-1])
    assert final["ENTRYPOINT"] == '["tracardi-operator"]'
    assert final["CMD"] == '["run"]'
    assert final["EXPOSE"] == str(Settings().health_port)
