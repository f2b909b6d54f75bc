"""The operator installed with its Helm chart: `helm install` of charts/tracardi-operator into devenv with
the image built by `make image` (and devenv's two settings as `extraEnv`), an installation created and
Ready, `helm upgrade` with changed values (a rollout to one replica logging at DEBUG, the installation
still Ready), then `helm uninstall`: the operator gone, the CRDs, the installation and its Elasticsearch
indices as they were.

The release is `helm-e2e` in the namespace `tracardi-operator-helm`, so that no name meets what
test_shipped.py leaves behind in `tracardi-operator` (kubectl apply -k: a ClusterRole `tracardi-operator`,
a ServiceAccount, ...), whichever runs first; everything the release made goes with it, and the namespace
too. The session's local-process operator is stopped meanwhile (two operators would act twice)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv import helm
from devenv.nodeagent.images import ImageStore
from devenv.paths import State
from tests.e2e.conftest import REPO, Installations, OperatorProcess
from tests.factories import wait_for
from tracardi_operator.models import INSTALLATION, RETENTION_POLICY

IMAGE_TAG = "dev"
RELEASE = "helm-e2e"
OPERATOR_NS = "tracardi-operator-helm"
FULLNAME = f"{RELEASE}-tracardi-operator"
CHART = REPO / "charts" / "tracardi-operator"
VERSION = "0.8.2.1"

DEVENV_VALUES = {
    "image": {"tag": IMAGE_TAG},
    "extraEnv": [
        # devenv's Elasticsearch is an OSS build without `flattened`; the simulator does not need it.
        {"name": "TRACARDI_OPERATOR_FLATTENED_CHECK", "value": "off"},
        # devenv's pods share the host's network: each replica listens on its own pod IP.
        {"name": "TRACARDI_OPERATOR_HEALTH_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ],
}


class Helm:
    """helm against devenv, with its caches and configuration under the test's temporary directory."""

    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=180,
                              env=self.env, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout


def _deployment(apps: Any) -> Any:
    return apps.read_namespaced_deployment(FULLNAME, OPERATOR_NS)


def _rolled_out(apps: Any, core: Any) -> bool:
    """The Deployment's current generation ready on every replica, and no pod of an older one left."""
    d = _deployment(apps)
    want = d.spec.replicas
    pods = core.list_namespaced_pod(OPERATOR_NS, label_selector="app.kubernetes.io/component=operator").items
    return bool(d.status.observed_generation == d.metadata.generation and d.status.ready_replicas == want
                and d.status.updated_replicas == want and (d.status.replicas or 0) == want and len(pods) == want)


def _holder(kube_api: Any) -> str | None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        lease = client.CoordinationV1Api(kube_api).read_namespaced_lease("tracardi-operator", OPERATOR_NS)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return str(lease.spec.holder_identity) if lease.spec.holder_identity else None


def _namespace_gone(core: Any, name: str) -> bool:
    return not [n for n in core.list_namespace().items if n.metadata.name == name]


def _indices(es: Any) -> dict[str, str]:
    """Every Tracardi index -> its uuid (a deleted and re-created index would have another)."""
    rows = es.cat.indices(index="*tracardi*", format="json", h="index,uuid", expand_wildcards="all")
    return {row["index"]: row["uuid"] for row in rows}


def _env(deployment: Any) -> dict[str, str | None]:
    (container,) = deployment.spec.template.spec.containers
    return {e.name: e.value for e in container.env}


def test_helm_install_upgrade_uninstall(devenv: Any, kube_api: Any, namespace: str, es: Any,
                                        operator: OperatorProcess, clean_es: None, tmp_path: Path) -> None:
    from kubernetes import client

    state = State.default()
    if ImageStore(state.root / "images").find(f"tracardi-operator:{IMAGE_TAG}") is None:
        pytest.skip(f"tracardi-operator:{IMAGE_TAG} is not built here: `make image` (make test builds it)")
    run = Helm(helm.build(state), devenv.kubeconfig, tmp_path / "helm")
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    rbac, ext = client.RbacAuthorizationV1Api(kube_api), client.ApiextensionsV1Api(kube_api)
    values = tmp_path / "devenv-values.yaml"
    values.write_text(yaml.safe_dump(DEVENV_VALUES))
    started = time.monotonic()
    operator.stop()  # one operator at a time
    wait_for(lambda: _namespace_gone(core, OPERATOR_NS), 120, f"{OPERATOR_NS} of an earlier run to be gone")
    try:
        t = time.monotonic()
        notes = run("install", RELEASE, str(CHART), "--namespace", OPERATOR_NS, "--create-namespace",
                    "-f", str(values))
        assert "kubectl get tracardiinstallations" in notes, notes
        wait_for(lambda: _rolled_out(apps, core), 120, "the chart's operator Deployment to be Ready")
        assert _deployment(apps).spec.replicas == 2
        print(f"  helm: installed, 2 replicas Ready in {time.monotonic() - t:.1f}s", file=sys.stderr)

        installations = Installations(kube_api, namespace, devenv.elasticsearch_url)
        t = time.monotonic()
        installations.create("acme", VERSION)
        installations.wait_settled("acme", VERSION)
        print(f"  helm: {VERSION} installed and Ready in {time.monotonic() - t:.1f}s", file=sys.stderr)

        t = time.monotonic()
        generation = _deployment(apps).metadata.generation
        run("upgrade", RELEASE, str(CHART), "--namespace", OPERATOR_NS, "-f", str(values),
            "--set", "replicas=1", "--set", "logLevel=DEBUG")
        deployment = _deployment(apps)
        assert deployment.metadata.generation > generation
        assert deployment.spec.replicas == 1
        assert _env(deployment)["LOG_LEVEL"] == "DEBUG"
        assert deployment.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
        wait_for(lambda: _rolled_out(apps, core), 120, "the upgraded Deployment rolled out to one replica")
        (pod,) = core.list_namespaced_pod(OPERATOR_NS, label_selector="app.kubernetes.io/component=operator").items
        wait_for(lambda: _holder(kube_api) == pod.metadata.name, 60, f"{pod.metadata.name} to lead")
        installations.wait_settled("acme", VERSION, timeout=60)
        print(f"  helm: upgraded to 1 replica at DEBUG, leading, acme Ready, in {time.monotonic() - t:.1f}s",
              file=sys.stderr)

        before = _indices(es)
        assert before, "the installation has indices"
        children = sorted(d.metadata.name for d in apps.list_namespaced_deployment(namespace).items)
        assert children
        t = time.monotonic()
        run("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait", "--timeout", "2m")
        wait_for(lambda: not core.list_namespaced_pod(OPERATOR_NS).items, 60, "the operator's pods to go")
        assert not apps.list_namespaced_deployment(OPERATOR_NS).items
        assert not core.list_namespaced_service_account(OPERATOR_NS, field_selector=f"metadata.name={FULLNAME}").items
        assert not [r for r in rbac.list_cluster_role().items if r.metadata.name == FULLNAME]
        assert not [b for b in rbac.list_cluster_role_binding().items if b.metadata.name == FULLNAME]
        print(f"  helm: uninstalled in {time.monotonic() - t:.1f}s", file=sys.stderr)
        for crd in (INSTALLATION.crd_name, RETENTION_POLICY.crd_name):
            assert ext.read_custom_resource_definition(crd).metadata.deletion_timestamp is None, crd
        acme = installations.get("acme")
        assert acme["metadata"].get("deletionTimestamp") is None
        assert acme["status"]["currentVersion"] == VERSION
        ready = installations.condition("acme", "Ready")
        assert ready is not None
        assert ready["status"] == "True"
        assert sorted(d.metadata.name for d in apps.list_namespaced_deployment(namespace).items) == children
        assert _indices(es) == before, "helm uninstall touched no index"
        print(f"  helm e2e: {time.monotonic() - started:.1f}s", file=sys.stderr)
    finally:
        run("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--ignore-not-found", "--wait", check=False)
        if not _namespace_gone(core, OPERATOR_NS):
            core.delete_namespace(OPERATOR_NS)
        wait_for(lambda: _namespace_gone(core, OPERATOR_NS), 120, f"{OPERATOR_NS} to be deleted")
        operator.start()
