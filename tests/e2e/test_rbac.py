"""The upgrade story with the operator authenticated as the ServiceAccount of manifests/, through a
TokenRequest token, against devenv's RBAC-enforcing apiserver: what manifests/rbac.yaml grants must be
enough (any 403 in the operator's log fails), and nothing more is needed.

On the way it captures the installation as it really is while Progressing (mid-upgrade), Ready
(after) and Degraded (a second installation whose Tracardi install leaves indices out), and classifies
them with the GitOps health checks of manifests/gitops/. With TRACARDI_UPDATE_STATUS_FIXTURES=1 it
writes them to tests/fixtures/status/real-*.json, which tests/unit/test_gitops_health.py reads.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import GROUP, PLURAL, REPO, VERSION, Installations, OperatorProcess
from tests.factories import wait_for
from tests.unit.test_gitops_health import argocd_health, flux_health

MANIFESTS = REPO / "manifests"
FIXTURES = REPO / "tests" / "fixtures" / "status"
SA_NAMESPACE = SA_NAME = "tracardi-operator"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
# What the operator's log says when the apiserver refuses a request: kopf's APIForbiddenError, the
# kubernetes client's "(403) Reason: Forbidden", RBAC's "... is forbidden: User ... cannot ...", the
# operator's own "could not post event X: 403". Matched after the line's timestamp, whose milliseconds
# are ",403" now and then.
FORBIDDEN = re.compile(r"forbidden|\b403\b", re.IGNORECASE)
TIMESTAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]|^\{\"ts\":\s*[\d.]+")


def refused(line: str) -> bool:
    return bool(FORBIDDEN.search(TIMESTAMP.sub("", line)))


UPDATE_FIXTURES = os.environ.get("TRACARDI_UPDATE_STATUS_FIXTURES") == "1"


def kubectl(devenv: Any, *args: str) -> str:
    binary = Path(devenv.kubeconfig).parent / "bin" / "kubectl"
    result = subprocess.run([str(binary), "--kubeconfig", str(devenv.kubeconfig), *args], capture_output=True,
                            text=True, timeout=120, check=False, cwd=REPO)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig with `token` as its only credential; server and CA from devenv's kubeconfig."""
    (cluster,) = yaml.safe_load(admin_kubeconfig.read_text())["clusters"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": SA_NAME, "user": {"token": token}}],
        "contexts": [{"name": SA_NAME, "context": {"cluster": cluster["name"], "user": SA_NAME}}],
        "current-context": SA_NAME,
    }))
    path.chmod(0o600)
    return path


def _exists(read: Any, *args: str) -> bool:
    try:
        read(*args)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


@pytest.fixture(scope="module")
def sa_kubeconfig(devenv: Any, kube_api: Any, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """manifests/' namespace, ServiceAccount, ClusterRole and binding applied (not the Deployment: the
    operator runs here as a local process), and a kubeconfig with a TokenRequest token of that
    ServiceAccount. What this created is deleted afterwards; what was there already stays."""
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    wait_for(lambda: not _exists(core.read_namespace, SA_NAMESPACE)
             or core.read_namespace(SA_NAMESPACE).status.phase != "Terminating", 120,
             f"namespace {SA_NAMESPACE} to finish terminating")
    existed = {
        "namespace": _exists(core.read_namespace, SA_NAMESPACE),
        "clusterrole": _exists(rbac.read_cluster_role, SA_NAME),
        "clusterrolebinding": _exists(rbac.read_cluster_role_binding, SA_NAME),
    }
    files = ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml")
    kubectl(devenv, "apply", *(arg for f in files for arg in ("-f", str(MANIFESTS / f))))
    wait_for(lambda: _exists(core.read_namespaced_service_account, SA_NAME, SA_NAMESPACE), 30, "the ServiceAccount")
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[],
                                                                                 expiration_seconds=7200))
    token = core.create_namespaced_service_account_token(SA_NAME, SA_NAMESPACE, request).status.token
    path = token_kubeconfig(devenv.kubeconfig, token, tmp_path_factory.mktemp("sa") / "kubeconfig")
    yield path
    if not existed["clusterrolebinding"]:
        rbac.delete_cluster_role_binding(SA_NAME)
    if not existed["clusterrole"]:
        rbac.delete_cluster_role(SA_NAME)
    if not existed["namespace"]:
        core.delete_namespace(SA_NAMESPACE)


class ServiceAccountOperator(OperatorProcess):
    """`tracardi-operator run` with KUBECONFIG pointing at the ServiceAccount's token kubeconfig."""

    def __init__(self, devenv: Any, log_dir: Path, kubeconfig: Path) -> None:
        super().__init__(dataclasses.replace(devenv, kubeconfig=kubeconfig), log_dir)
        # The Lease lives where the manifests let the ServiceAccount hold it: its own namespace.
        self.extra_env = {"TRACARDI_OPERATOR_LEASE_NAMESPACE": SA_NAMESPACE}

    def start(self) -> None:
        # Outside a pod the operator logs in with $KUBECONFIG; with KUBERNETES_SERVICE_HOST set it could
        # pick a mounted token instead (settings.sa_dir), and this test would prove nothing.
        assert "KUBERNETES_SERVICE_HOST" not in os.environ
        super().start()

    def forbidden(self) -> list[str]:
        return [f"{log.name}: {line}" for log in sorted(self.log_dir.glob("operator-*.log"))
                for line in log.read_text(errors="replace").splitlines() if refused(line)]

    def assert_never_forbidden(self) -> None:
        lines = self.forbidden()
        assert not lines, (f"the operator was refused {len(lines)} time(s) as {SA_USER}; manifests/rbac.yaml "
                           "lacks a rule:\n" + "\n".join(line[:600] for line in lines[:40]))


def other_operators() -> list[int]:
    """`tracardi-operator run` processes this pytest started and still runs (the session's `operator`
    fixture, as cluster-admin)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        # The console script runs as `<python> <venv>/bin/tracardi-operator run`.
        script = next((i for i, arg in enumerate(cmdline[:2]) if arg.endswith(b"tracardi-operator")), None)
        if ppid == os.getpid() and script is not None and b"run" in cmdline[script + 1:]:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def sa_operator(request: pytest.FixtureRequest, devenv: Any, sa_kubeconfig: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceAccountOperator]:
    """The operator as the ServiceAccount; the session's cluster-admin operator (the `operator` fixture,
    when an earlier module started it) is stopped meanwhile, or two would act on the same installations."""
    paused: OperatorProcess | None = None
    if other_operators():
        paused = request.getfixturevalue("operator")  # running, hence the session's cached instance
        assert isinstance(paused, OperatorProcess)
        paused.stop()
        assert not other_operators(), "an operator this test did not start still runs"
    op = ServiceAccountOperator(devenv, tmp_path_factory.mktemp("operator-sa"), sa_kubeconfig)
    op.start()
    yield op
    op.stop()
    if paused is not None:
        paused.start()


@pytest.fixture
def installations(kube_api: Any, namespace: str, devenv: Any, sa_operator: ServiceAccountOperator,
                  clean_es: None) -> Iterator[Installations]:
    inst = Installations(kube_api, namespace, devenv.elasticsearch_url)
    yield inst
    # Delete the installations and let their children go before the namespace is deleted: the operator
    # writing into a terminating namespace would be refused (403) for a reason that is not RBAC.
    for obj in inst.api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
        inst.api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, obj["metadata"]["name"])
    wait_for(lambda: not inst.apps.list_namespaced_deployment(namespace).items
             and not inst.batch.list_namespaced_job(namespace).items, 120, "the children to be collected")
    time.sleep(2)  # the operator forgets the installations on their DELETED events


CAPTURED: dict[str, dict[str, Any]] = {}


def trimmed(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("managedFields", None)
    return obj


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def test_the_token_is_the_service_account_and_cannot_read_secrets_at_large(sa_kubeconfig: Path) -> None:
    api = config.new_client_from_config(str(sa_kubeconfig))
    try:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview(metadata=client.V1ObjectMeta()))
        assert review.status.user_info.username == SA_USER
        authz = client.AuthorizationV1Api(api)

        def allowed(verb: str, resource: str, group: str = "", namespace: str = "default") -> bool:
            attrs = client.V1ResourceAttributes(verb=verb, resource=resource, group=group, namespace=namespace)
            review = authz.create_self_subject_access_review(
                client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)))
            return bool(review.status.allowed)

        assert allowed("watch", "tracardiinstallations", "tracardi.com")
        assert allowed("create", "jobs", "batch")
        assert allowed("get", "secrets")
        for verb, resource, group in (("list", "secrets", ""), ("create", "secrets", ""),
                                      ("update", "tracardiinstallations", "tracardi.com"),
                                      ("create", "clusterrolebindings", "rbac.authorization.k8s.io"),
                                      ("delete", "namespaces", "")):
            assert not allowed(verb, resource, group), (verb, resource)
    finally:
        api.close()


def test_upgrade_as_the_service_account(installations: Installations, sa_operator: ServiceAccountOperator) -> None:
    started = time.monotonic()
    installations.create("acme", "0.8.0")
    installations.wait_settled("acme", "0.8.0")
    print(f"  rbac e2e: 0.8.0 ready in {time.monotonic() - started:.0f}s", file=sys.stderr)

    installations.patch_spec("acme", {"version": "0.8.1"})
    generation = installations.get("acme")["metadata"]["generation"]
    snapshots: list[dict[str, Any]] = []

    def done() -> dict[str, Any] | None:
        obj = installations.get("acme")
        status = obj.get("status") or {}
        conds = conditions(obj)
        if conds.get("Degraded", {}).get("status") == "True":
            raise AssertionError(f"acme is Degraded: {conds['Degraded']}")
        if (status.get("observedGeneration") == generation
                and conds.get("Progressing", {}).get("status") == "True"):
            snapshots.append(obj)
        if (status.get("observedGeneration") == generation and status.get("currentVersion") == "0.8.1"
                and conds.get("Ready", {}).get("status") == "True"
                and conds.get("Progressing", {}).get("status") == "False"):
            return obj
        return None

    t = time.monotonic()
    ready = wait_for(done, 600, "acme Ready on 0.8.1", interval=0.3)
    print(f"  rbac e2e: 0.8.0 -> 0.8.1 in {time.monotonic() - t:.0f}s, {len(snapshots)} snapshots while "
          "Progressing", file=sys.stderr)
    assert installations.jobs() == ["acme-install-080", "acme-install-08x", "acme-migrate-080-to-08x"]
    assert [(v["version"], v["state"]) for v in ready["status"]["versions"]] == [
        ("0.8.0", "Superseded"), ("0.8.1", "Current")]
    assert snapshots, "the upgrade was never seen in progress"
    # The most telling moment of an upgrade: data being migrated (else the last one seen in progress).
    migrating = [s for s in snapshots if (s["status"].get("upgrade") or {}).get("step") == "Migrating"]
    CAPTURED["progressing"] = trimmed((migrating or snapshots)[len(migrating or snapshots) // 2])
    CAPTURED["ready"] = trimmed(ready)
    sa_operator.assert_never_forbidden()


def test_failed_install_degrades_as_the_service_account(installations: Installations,
                                                        sa_operator: ServiceAccountOperator) -> None:
    installations.create("broken", "0.8.0", env=[{"name": "TRACARDI_SIM_FAULTS", "value": "install-partial"}])
    installations.wait_condition("broken", "Degraded", "True", timeout=300)
    obj = installations.get("broken")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    CAPTURED["degraded"] = trimmed(obj)
    sa_operator.assert_never_forbidden()


@pytest.mark.parametrize(("name", "argo", "flux"), [
    ("progressing", "Progressing", "InProgress"),
    ("ready", "Healthy", "Current"),
    ("degraded", "Degraded", "Failed"),
])
def test_gitops_health_of_the_real_objects(name: str, argo: str, flux: str) -> None:
    if name not in CAPTURED:
        pytest.fail(f"no {name} object was captured (an earlier test of this module failed)")
    obj = CAPTURED[name]
    for lua in ("lua5.1", "lua5.4"):
        assert argocd_health(obj, lua)[0] == argo, json.dumps(obj.get("status"), indent=1)
    assert flux_health(obj) == flux
    if UPDATE_FIXTURES:
        (FIXTURES / f"real-{name}.json").write_text(json.dumps(obj, indent=2) + "\n")


def test_operator_log_has_no_403(sa_operator: ServiceAccountOperator) -> None:
    """Last: also covers what the operator did after the other tests' assertions."""
    time.sleep(3)
    sa_operator.assert_never_forbidden()
    assert sa_operator.proc is not None
    assert sa_operator.proc.poll() is None, "the operator is still running"


def test_forbidden_pattern_finds_refusals_not_timestamps() -> None:
    lines = [
        "[2026-11-27 06:02:59,632] tracardi_operator.ku [WARNING ] could not post event UpgradeStarted: 403",
        "[2026-11-27 06:02:59,632] kopf APIForbiddenError('jobs is forbidden: User ... cannot create')",
        "(403)", "Reason: Forbidden", "{'kind': 'Status', 'code': 403}", '{"ts":1795759239.403,"code":403}',
    ]
    assert all(refused(line) for line in lines)
    assert not refused("[2026-11-27 05:58:47,403] kopf.objects [INFO    ] Handler succeeded, uid 5f0c-403a")
    assert not refused('{"ts":1795759239.403,"level":"info","event":"install.post"}')
