"""Fixtures shared by the integration and end-to-end tests: devenv brought up once per session
(reused when it already runs), API clients, and a namespace of its own for each test.

With pytest-xdist (`make test` runs two workers), the first worker uses devenv's state directory as it
is, and every other worker a devenv of its own beside it (`lifecycle.worker_state`: `.devenv-gw1`, ...), brought
up for the session and down after it. The tests of one worker never see another's cluster,
Elasticsearch or Redis, so the tests that restart the apiserver or Elasticsearch, clear Elasticsearch
or read every index of the cluster run beside each other safely."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def _devenv_of_this_worker() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker in ("", "gw0"):
        return
    from devenv.lifecycle import worker_state
    from devenv.paths import State

    os.environ["DEVENV_DIR"] = str(worker_state(State.default(), worker).root)


_devenv_of_this_worker()  # before anything reads State.default()


@dataclass(frozen=True)
class Devenv:
    kubeconfig: Path
    elasticsearch_url: str
    redis_url: str


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def devenv() -> Iterator[Devenv]:
    from devenv import lifecycle
    from devenv.paths import State

    state = State.default()
    was_up = lifecycle.is_up(state)
    values = lifecycle.up(state)
    _sweep_leftovers(Path(values["KUBECONFIG"]))
    yield Devenv(Path(values["KUBECONFIG"]), values["ELASTICSEARCH_URL"], values["REDIS_URL"])
    if not was_up:
        lifecycle.down(state)


TEST_NAMESPACE = re.compile(r"[tg]-[0-9a-f]{8}|tracardi-operator-helm")
"""The namespaces the tests make for themselves (`namespace`, the module namespaces of e2e files, the
Helm release's)."""
SHIPPED_NAMESPACE = "tracardi-operator"


def _sweep_leftovers(kubeconfig: Path, timeout: float = 180) -> None:
    """What an earlier session killed before its teardown left in devenv's cluster (devenv keeps its etcd
    when it is brought up again): every installation and retention policy (their children go with them:
    they are owned), the tests' namespaces, the shipped operator's Deployment. An installation left
    behind would have this session's operator act on it, and its Deployments would count as live
    versions in retention's evidence; a policy left behind would delete indices a test keeps."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    from tracardi_operator import API_GROUP, API_VERSION
    from tracardi_operator.models import INSTALLATION, RETENTION_POLICY

    api = config.new_client_from_config(str(kubeconfig))
    custom, core, apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)
    swept: list[str] = []
    for plural in (INSTALLATION.plural, RETENTION_POLICY.plural):
        try:
            items = custom.list_cluster_custom_object(API_GROUP, API_VERSION, plural)["items"]
        except ApiException as e:
            if e.status != 404:
                raise
            continue  # the CRD is not installed yet
        for obj in items:
            meta = obj["metadata"]
            if meta.get("namespace"):
                custom.delete_namespaced_custom_object(API_GROUP, API_VERSION, meta["namespace"], plural, meta["name"])
            else:
                custom.delete_cluster_custom_object(API_GROUP, API_VERSION, plural, meta["name"])
            swept.append(f"{plural} {meta.get('namespace', '')}/{meta['name']}")
    try:
        apps.delete_namespaced_deployment("tracardi-operator", SHIPPED_NAMESPACE)
        swept.append(f"deployment {SHIPPED_NAMESPACE}/tracardi-operator")
    except ApiException as e:
        if e.status != 404:
            raise
    namespaces = [n.metadata.name for n in core.list_namespace().items if TEST_NAMESPACE.fullmatch(n.metadata.name)]
    for name in namespaces:
        if core.read_namespace(name).status.phase != "Terminating":
            core.delete_namespace(name)
        swept.append(f"namespace {name}")
    if not swept:
        return
    print(f"\nleft by an earlier session and deleted: {', '.join(swept)}", flush=True)
    deadline = time.monotonic() + timeout
    while namespaces and time.monotonic() < deadline:
        left = {n.metadata.name for n in core.list_namespace().items}
        namespaces = [n for n in namespaces if n in left]
        if namespaces:
            print(f"waiting for {len(namespaces)} namespace(s) to be gone", flush=True)
            time.sleep(5)


@pytest.fixture(scope="session")
def kube_api(devenv: Devenv):  # type: ignore[no-untyped-def]
    from kubernetes import config

    return config.new_client_from_config(str(devenv.kubeconfig))


@pytest.fixture(scope="session")
def kube_client(devenv: Devenv):  # type: ignore[no-untyped-def]
    """The operator's own client (`kubeclient`), with devenv's admin kubeconfig."""
    from tracardi_operator.kubeclient import KubeClient

    client = KubeClient.from_kubeconfig(devenv.kubeconfig)
    yield client
    client.close()


@pytest.fixture(scope="session")
def es(devenv: Devenv):  # type: ignore[no-untyped-def]
    from elasticsearch import Elasticsearch

    client = Elasticsearch([devenv.elasticsearch_url])
    yield client
    client.close()


@pytest.fixture
def namespace(kube_api) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh namespace with its default ServiceAccount; deleted afterwards."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 60
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()
