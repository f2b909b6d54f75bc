"""The operator as shipped: the image built by `make image`, deployed by `kubectl apply -k devenv/manifests`
(manifests/ with the image `tracardi-operator:dev` and devenv's two settings), carries an installation
0.8.0 -> 0.8.1 -> 0.8.2.1. The node agent runs the operator and its Jobs from the image's root filesystem:
checked from /proc, they run as the image's UID 65532 with the manifests' ServiceAccount token mounted
where Kubernetes mounts it; the operator's log has no 403. `apply-crds` inside the image finds the CRDs
of the installed package. The session's local-process operator is stopped meanwhile (two operators would
act twice) and started again afterwards."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devenv.nodeagent.images import ImageStore
from devenv.paths import State
from tests.e2e.conftest import REPO, Installations, OperatorProcess
from tests.factories import wait_for

IMAGE = "tracardi-operator:dev"
UID = 65532
OPERATOR_NS = "tracardi-operator"


def _kubectl(devenv: Any, *args: str, check: bool = True) -> str:
    state = State.default()
    done = subprocess.run([str(state.bin / "kubectl"), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KUBECONFIG": str(devenv.kubeconfig)}, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _pid_of(pods_dir: Path, namespace: str, pod: str, container: str) -> int | None:
    try:
        return int((pods_dir / f"{namespace}_{pod}_{container}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class UidSampler:
    """Reads the UID and GID of every container process of a namespace from /proc while it runs
    (Job pods live for seconds)."""

    def __init__(self, pods_dir: Path, namespace: str) -> None:
        self.pods_dir, self.namespace = pods_dir, namespace
        self.seen: dict[str, tuple[str, str]] = {}  # <pod>_<container> -> (Uid line, Gid line)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> UidSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for pidfile in self.pods_dir.glob(f"{self.namespace}_*.pid"):
                try:
                    pid = int(pidfile.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                status = _status(pid)
                # Between unshare and the container's exec the process is still root: only the final one counts.
                if status.get("Uid", "").split("\t")[0] not in ("", "0"):
                    key = pidfile.name.removeprefix(f"{self.namespace}_").removesuffix(".pid")
                    self.seen[key] = (status["Uid"], status["Gid"])


SA = "/var/run/secrets/kubernetes.io/serviceaccount"


def _inside(pid: int, path: str) -> str:
    """A file as the process sees it (its root, its mounts; /var/run is a link to /run in the image)."""
    return subprocess.run(["chroot", f"/proc/{pid}/root", "cat", path], capture_output=True, text=True,
                          check=True, timeout=10).stdout


def _token_subject(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def _deployment_ready(apps: Any) -> bool:
    d = apps.read_namespaced_deployment("tracardi-operator", OPERATOR_NS)
    want = d.spec.replicas
    return bool(d.status.ready_replicas == want and d.status.updated_replicas == want
                and d.status.observed_generation == d.metadata.generation)


def _apply_crds_in_the_image(devenv: Any, kube_api: Any, namespace: str) -> str:
    """`tracardi-operator apply-crds` in a pod of the image, with a ServiceAccount that may apply CRDs."""
    from kubernetes import client

    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    name = f"{namespace}-crd-installer"
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "crd-installer"}})
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": [{
        "apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
        "verbs": ["get", "create", "patch"]}]})
    rbac.create_cluster_role_binding({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "crd-installer", "namespace": namespace}]})
    try:
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": "apply-crds"},
            "spec": {"serviceAccountName": "crd-installer", "restartPolicy": "Never",
                     "containers": [{"name": "apply", "image": IMAGE, "args": ["apply-crds"],
                                     "securityContext": {"readOnlyRootFilesystem": True}}]}})

        def finished() -> str | None:
            phase = core.read_namespaced_pod("apply-crds", namespace).status.phase
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_for(finished, 120, "the apply-crds pod")
        log = _kubectl(devenv, "-n", namespace, "logs", "apply-crds")
        assert phase == "Succeeded", log
        return log
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)


REFUSED = re.compile(r"(?<![0-9A-Za-z])403(?![0-9A-Za-z])|Forbidden")
"""A 403 status or Forbidden, not the digits 403 inside a timestamp or a UID (`…532403+00:00`, `-403b-`)."""

LEADER_LOGS: dict[str, str] = {}
"""The log of the leader pod the test deletes, read just before."""


def _holder(kube_api: Any) -> str | None:
    from kubernetes import client

    lease = client.CoordinationV1Api(kube_api).read_namespaced_lease("tracardi-operator", OPERATOR_NS)
    return str(lease.spec.holder_identity) if lease.spec.holder_identity else None


def _delete_the_leader_mid_migration(devenv: Any, kube_api: Any, installations: Installations) -> float:
    """Delete the leader's pod while the migration Job runs; seconds until another pod holds the Lease."""
    from kubernetes import client

    def migrating() -> bool:
        jobs = installations.batch.list_namespaced_job(installations.namespace).items
        return any("-migrate-08x-to-0820" in j.metadata.name and (j.status.active or 0) > 0 for j in jobs)

    wait_for(migrating, 300, "the 08x -> 0820 migration Job running", interval=0.2)
    leader = _holder(kube_api)
    assert leader is not None
    LEADER_LOGS[leader] = _kubectl(devenv, "-n", OPERATOR_NS, "logs", f"pod/{leader}")
    assert f"leader election: {leader} now leads" in LEADER_LOGS[leader]
    client.CoreV1Api(kube_api).delete_namespaced_pod(leader, OPERATOR_NS)
    deleted = time.monotonic()
    wait_for(lambda: (h := _holder(kube_api)) is not None and h != leader, 60, "another replica holding the Lease",
             interval=0.2)
    return time.monotonic() - deleted


def _orchestrators(es: Any, db: str, tenant: str) -> list[str]:
    """The context of every POST /migration the version `db`.`tenant` received (its orchestrator tasks)."""
    index = f"{db}.{tenant}.tracardi-task,prod-{db}.{tenant}.tracardi-task"
    es.indices.refresh(index=index, ignore_unavailable=True)
    hits = es.search(index=index, query={"bool": {"filter": [
        {"term": {"celery.queue": f"{db}.{tenant}"}}, {"term": {"celery.kind": "orchestrator"}}]}},
        size=100, ignore_unavailable=True)["hits"]["hits"]
    return [h["_source"]["celery"]["context"] for h in hits]


def test_shipped_operator_carries_an_upgrade(devenv: Any, kube_api: Any, namespace: str, es: Any,
                                             operator: OperatorProcess, clean_es: None) -> None:
    from kubernetes import client

    state = State.default()
    if ImageStore(state.root / "images").find(IMAGE) is None:
        pytest.skip(f"{IMAGE} is not built here: `make image` (make test builds it)")
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    started = time.monotonic()
    operator.stop()  # one operator at a time
    # Installations of earlier tests in namespaces still being deleted would make the new operator's
    # writes there fail with 403 (a terminating namespace), which this test counts as an RBAC gap.
    wait_for(lambda: not [n for n in core.list_namespace().items if n.status.phase == "Terminating"], 180,
             "earlier tests' namespaces to be gone")
    try:
        assert "applied tracardi.com_tracardiinstallations.yaml" in _apply_crds_in_the_image(devenv, kube_api,
                                                                                              namespace)
        _kubectl(devenv, "apply", "-k", str(REPO / "devenv" / "manifests"))
        wait_for(lambda: _deployment_ready(apps), 120, "the operator Deployment to be Ready")
        pods = [p for p in core.list_namespaced_pod(OPERATOR_NS, label_selector="app.kubernetes.io/component"
                                                    "=operator").items if p.status.phase == "Running"]
        assert pods
        for pod in pods:
            assert pod.spec.service_account_name == "tracardi-operator"
            pid = _pid_of(state.pods, OPERATOR_NS, pod.metadata.name, "operator")
            assert pid is not None
            status = _status(pid)
            assert status["Uid"].split("\t") == [str(UID)] * 4
            assert status["Gid"].split("\t") == [str(UID)] * 4
        subject = _token_subject(_inside(pid, f"{SA}/token"))
        assert subject == "system:serviceaccount:tracardi-operator:tracardi-operator"
        assert _inside(pid, f"{SA}/namespace") == OPERATOR_NS
        assert Path(f"/proc/{pid}/root/opt/venv/bin/tracardi-operator").exists(), "runs from the image's rootfs"
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONOPTIMIZE=2" in environ, "runs without docstrings and asserts (the smaller process)"
        packages = Path(f"/proc/{pid}/root/opt/venv/lib/python3.11/site-packages")
        assert list((packages / "kopf" / "__pycache__").glob("*.opt-2.pyc")), "bytecode compiled at that level"
        assert not (packages / "kubernetes").exists(), "the operator's own client; no `kubernetes` package"
        stdlib = [p for p in (Path(f"/proc/{pid}/root/usr/local/lib/python3.11"),
                              Path(f"/proc/{pid}/root/usr/lib/python3.11")) if (p / "json").is_dir()]
        assert stdlib
        assert list((stdlib[0] / "json" / "__pycache__").glob("*.opt-2.pyc")), "the standard library's too"

        installations = Installations(kube_api, namespace, devenv.elasticsearch_url)
        with UidSampler(state.pods, namespace) as sampler:
            t = time.monotonic()
            installations.create("acme", "0.8.0")
            installations.wait_settled("acme", "0.8.0")
            print(f"  shipped: 0.8.0 in {time.monotonic() - t:.1f}s", file=sys.stderr)
            for version in ("0.8.1", "0.8.2.1"):
                t = time.monotonic()
                installations.patch_spec("acme", {"version": version})
                if version == "0.8.2.1":
                    takeover = _delete_the_leader_mid_migration(devenv, kube_api, installations)
                    print(f"  shipped: the standby took over {takeover:.1f}s after the leader pod was deleted",
                          file=sys.stderr)
                    assert takeover <= 20
                installations.wait_settled("acme", version, timeout=600)
                print(f"  shipped: -> {version} in {time.monotonic() - t:.1f}s", file=sys.stderr)
        orchestrators = _orchestrators(es, "0820", "ffe49")
        assert sorted(orchestrators) == ["production", "staging"], "one POST /migration per context"
        jobs = installations.jobs()
        assert len([j for j in jobs if "-install-" in j]) == 3, jobs
        assert len([j for j in jobs if "-migrate-" in j]) == 2, jobs
        for job in jobs:
            runs = {k: v for k, v in sampler.seen.items() if k.startswith(f"{job}-")}
            assert runs, f"no process of Job {job} was seen"
            for key, (uid, gid) in runs.items():
                assert uid.split("\t") == [str(UID)] * 4, f"{key}: Uid {uid}"
                assert gid.split("\t") == [str(UID)] * 4, f"{key}: Gid {gid}"

        # The replicas now: the deleted leader's replacement included (its log was read before it went).
        now_running = [p.metadata.name for p in core.list_namespaced_pod(
            OPERATOR_NS, label_selector="app.kubernetes.io/component=operator").items
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        logs = {name: _kubectl(devenv, "-n", OPERATOR_NS, "logs", f"pod/{name}") for name in now_running}
        logs.update(LEADER_LOGS)
        assert len(logs) >= 3, "both first replicas and the leader's replacement"
        for name, log in logs.items():
            assert f"operator identity: uid65532@{name}/" in log, "the pod's own host name"
            forbidden = [line for line in log.splitlines() if REFUSED.search(line)]
            assert not forbidden, "\n".join(forbidden[:10])
        print(f"  shipped e2e: {time.monotonic() - started:.1f}s", file=sys.stderr)
    finally:
        _kubectl(devenv, "-n", OPERATOR_NS, "delete", "deployment", "tracardi-operator", "--ignore-not-found",
                 "--wait=true", check=False)
        wait_for(lambda: not core.list_namespaced_pod(OPERATOR_NS).items, 60, "the operator's pods to go")
        operator.start()
