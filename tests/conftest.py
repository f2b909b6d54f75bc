"""Fixtures shared by the integration and end-to-end tests: devenv brought up once per session
(reused when it already runs), API clients, and a namespace of its own for each test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


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
    yield Devenv(Path(values["KUBECONFIG"]), values["ELASTICSEARCH_URL"], values["REDIS_URL"])
    if not was_up:
        lifecycle.down(state)


@pytest.fixture(scope="session")
def kube_api(devenv: Devenv):  # type: ignore[no-untyped-def]
    from kubernetes import config

    return config.new_client_from_config(str(devenv.kubeconfig))


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
