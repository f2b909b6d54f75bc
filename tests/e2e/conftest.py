"""End-to-end fixtures: the CRDs installed, the operator running as its own process against devenv
(killable and restartable), Elasticsearch cleared of Tracardi data between tests, and helpers to
create installations and wait on their status."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv import lifecycle
from devenv.paths import State
from devenv.procs import free_port
from tests.e2e.secretwatch import SecretWatch
from tests.factories import ADMIN_SECRET, TOKEN_SECRET, installation_body, installation_spec, wait_for
from tracardi_operator import API_GROUP, API_VERSION
from tracardi_operator.models import INSTALLATION, RETENTION_POLICY

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL, POLICIES = API_GROUP, API_VERSION, INSTALLATION.plural, RETENTION_POLICY.plural


class OperatorProcess:
    """`tracardi-operator run` as a real process; kill -9 and start again to test crash safety."""

    def __init__(self, devenv: Any, log_dir: Path) -> None:
        self.devenv = devenv
        self.log_dir = log_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: Any = None
        self.starts = 0
        self.extra_env: dict[str, str] = {}

    def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def start(self) -> None:
        self.starts += 1
        env = dict(os.environ)
        env.update({
            "KUBECONFIG": str(self.devenv.kubeconfig),
            "TRACARDI_OPERATOR_JOB_IMAGE": "tracardi-operator:dev",
            "TRACARDI_OPERATOR_HEALTH_PORT": str(self.port),
            "TRACARDI_OPERATOR_RESYNC_SECONDS": "20",
            "TRACARDI_OPERATOR_API_ADDRESSING": "pod",
            # devenv's Elasticsearch is an OSS build without `flattened`; the simulator does not need it.
            "TRACARDI_OPERATOR_FLATTENED_CHECK": "off",
            "PYTHONUNBUFFERED": "1",  # the log is read while the operator runs
        })
        env.update(self.extra_env)
        self.log = self.log_dir / f"operator-{self.starts}.log"
        self._close()
        self._out = open(self.log, "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "tracardi-operator"), "run"], stdout=self._out, stderr=subprocess.STDOUT,
            env=env, cwd=REPO, start_new_session=True,
        )
        wait_for(self._ready, 60, "the operator's /readyz")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the operator exited with {self.proc.returncode}; log {self.log}:\n"
                                 + self.log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean-up, as a node failure or an OOM kill would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()


@pytest.fixture(scope="session")
def crds(kube_api: Any, devenv: Any) -> None:
    from kubernetes import client

    from tracardi_operator.kube import Kube
    from tracardi_operator.kubeclient import KubeClient

    kube = Kube(KubeClient.from_kubeconfig(devenv.kubeconfig))
    for path in sorted((REPO / "crds").glob("tracardi.com_*.yaml")):
        kube.apply(yaml.safe_load(path.read_text()))
    ext = client.ApiextensionsV1Api(kube_api)

    def established() -> bool:
        for name in (INSTALLATION.crd_name, RETENTION_POLICY.crd_name):
            crd = ext.read_custom_resource_definition(name)
            if not any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or []):
                return False
        return True

    wait_for(established, 30, "the CRDs to be established")


SECRET_VALUES = ("s3cret-admin", "inst4ll-token")
"""Every Secret value the end-to-end tests create (`Installations`)."""


SECRET_NEEDLES = [v.encode() for v in SECRET_VALUES] + [base64.b64encode(v.encode()) for v in SECRET_VALUES]
"""What a leak looks like: each secret value, plain and base64-encoded."""


def scan_for_secrets(watch: SecretWatch, basetemp: Path) -> tuple[dict[str, bytes], list[str]]:
    """Where the operator writes, as (the logs read, the secret values found): the operators' logs under
    `basetemp` and the logs of every install and migration Job pod of this devenv (files, which outlast
    their pods), and every Event and installation or policy status `watch` saw written."""
    sources: dict[str, bytes] = {}
    for path in basetemp.rglob("operator-*.log"):
        sources[str(path)] = path.read_bytes()
    for path in State.default().pods.glob("*.log"):
        if "-install-" in path.name or "-migrate-" in path.name:
            sources[str(path)] = path.read_bytes()
    leaks = {f"{where}: {needle.decode()}" for where, text in sources.items() for needle in SECRET_NEEDLES
             if needle in text}
    return sources, sorted(leaks | set(watch.leaks()))


@pytest.fixture(scope="session")
def secret_watch(devenv: Any, kube_api: Any, crds: None) -> Iterator[SecretWatch]:
    """Every Event and every installation's and policy's status, read as they are written
    (`SecretWatch`), for the whole session of this worker."""
    watcher = SecretWatch(kube_api, SECRET_NEEDLES, GROUP, VERSION, (PLURAL, POLICIES))
    watcher.start()
    yield watcher
    watcher.stop()


@pytest.fixture(scope="session", autouse=True)
def no_secret_value_at_the_end(secret_watch: SecretWatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the last end-to-end test of the session (of this worker), once its operators have stopped:
    no secret value in any Event or status written during the session (`secret_watch`, which saw them
    before their namespaces were deleted), nor in the operators' and Jobs' logs.
    A leak fails the session's teardown."""
    yield
    _, leaks = scan_for_secrets(secret_watch, tmp_path_factory.getbasetemp())
    assert not leaks, (f"secret values found (watched: {secret_watch.seen}):\n" + "\n".join(leaks[:20]))


@pytest.fixture(scope="session")
def operator(devenv: Any, crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = OperatorProcess(devenv, tmp_path_factory.mktemp("operator"))
    op.start()
    yield op
    op.stop()


@pytest.fixture
def clean_es(es: Any) -> None:
    """Tracardi's index names depend only on the version and tenant: clear them between tests."""
    es.indices.delete(index="*tracardi*,-.*", expand_wildcards="all", ignore_unavailable=True)
    for t in es.indices.get_index_template().get("index_templates", []):
        if ".tracardi-" in t["name"]:
            es.indices.delete_index_template(name=t["name"])


class Installations:
    """Create and follow TracardiInstallations in one namespace."""

    def __init__(self, kube_api: Any, namespace: str, es_url: str) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(kube_api)
        self.core = client.CoreV1Api(kube_api)
        self.batch = client.BatchV1Api(kube_api)
        self.apps = client.AppsV1Api(kube_api)
        self.namespace = namespace
        self.es_url = es_url
        self.secret(ADMIN_SECRET, {"username": "admin@acme.test", "password": "s3cret-admin"})
        self.secret(TOKEN_SECRET, {"token": "inst4ll-token"})

    def secret(self, name: str, data: dict[str, str]) -> None:
        from kubernetes import client

        self.core.create_namespaced_secret(self.namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()}))

    def create(self, name: str, version: str, **spec: Any) -> dict[str, Any]:
        body = installation_body(installation_spec(
            version, redis_url=lifecycle.read_env(State.default())["REDIS_URL"],
            **{"elasticsearch": {"hosts": [self.es_url], "indexShards": 1, "indexReplicas": 0}, **spec},
        ), name=name)
        return dict(self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body))

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name))

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec})

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        self.api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                {"metadata": {"annotations": annotations}})

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        status = self.get(name).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == type_), None)

    def wait_settled(self, name: str, version: str, timeout: float = 300) -> dict[str, Any]:
        """Ready on `version`, nothing in progress, for the current generation."""
        def settled() -> dict[str, Any] | None:
            obj = self.get(name)
            status = obj.get("status") or {}
            conds = {c["type"]: c for c in status.get("conditions", [])}
            degraded = conds.get("Degraded", {})
            if degraded.get("status") == "True":
                raise AssertionError(f"{name} is Degraded: {degraded.get('reason')}: {degraded.get('message')}")
            ok = (status.get("observedGeneration") == obj["metadata"]["generation"]
                  and status.get("currentVersion") == version
                  and conds.get("Ready", {}).get("status") == "True"
                  and conds.get("Progressing", {}).get("status") == "False")
            return obj if ok else None

        return dict(wait_for(settled, timeout, f"{name} Ready on {version}"))

    def wait_condition(self, name: str, type_: str, status: str, timeout: float = 300,
                       reason: str | None = None) -> dict[str, Any]:
        def holds() -> dict[str, Any] | None:
            c = self.condition(name, type_)
            if c and c["status"] == status and (reason is None or c["reason"] == reason):
                return c
            return None

        return dict(wait_for(holds, timeout, f"{name} {type_}={status}" + (f" ({reason})" if reason else "")))

    def jobs(self) -> list[str]:
        return sorted(j.metadata.name for j in self.batch.list_namespaced_job(self.namespace).items)

    def images(self) -> dict[str, str]:
        return {d.metadata.name: d.spec.template.spec.containers[0].image
                for d in self.apps.list_namespaced_deployment(self.namespace).items}

    def events(self, name: str) -> list[tuple[str, str]]:
        items = self.core.list_namespaced_event(self.namespace,
                                                field_selector=f"involvedObject.name={name}").items
        return [(e.reason, e.message) for e in items]


@pytest.fixture
def installations(kube_api: Any, namespace: str, devenv: Any, operator: OperatorProcess,
                  clean_es: None) -> Installations:
    return Installations(kube_api, namespace, devenv.elasticsearch_url)
