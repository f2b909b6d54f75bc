"""Installations in namespaces that enforce the Pod Security Standards, on devenv (the apiserver's
PodSecurity admission is on): baseline with the defaults, restricted with a UID in the spec, and the
refusal named at once when restricted pods lack one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Installations
from tests.e2e.test_failures import wait_pods_gone

RESTRICTED_SECURITY = {
    "pod": {"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True},
    "container": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
}


def _enforce(kube_api: Any, namespace: str, level: str) -> None:
    from kubernetes import client

    client.CoreV1Api(kube_api).patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": "latest"}}})


@pytest.mark.parametrize(("level", "security"), [("baseline", None), ("restricted", RESTRICTED_SECURITY)])
def test_an_installation_becomes_ready_where_pod_security_is_enforced(
    kube_api: Any, installations: Installations, level: str, security: dict[str, Any] | None
) -> None:
    _enforce(kube_api, installations.namespace, level)
    installations.create("acme", "0.8.0", **({"security": security} if security else {}))
    installations.wait_settled("acme", "0.8.0", timeout=300)
    assert "acme-install-080" in installations.jobs(), "the install Job's pod was admitted too"
    wait_pods_gone(installations)  # nothing left for the operator to write into a terminating namespace


def test_restricted_pods_without_a_uid_are_refused_and_said_so_at_once(
    kube_api: Any, installations: Installations
) -> None:
    _enforce(kube_api, installations.namespace, "restricted")
    installations.create("acme", "0.8.0")
    degraded = installations.wait_condition("acme", "Degraded", "True", timeout=90, reason="PodsRefused")
    assert "violates PodSecurity" in degraded["message"]
    assert "restricted" in degraded["message"]
    assert any(reason == "PodsRefused" for reason, _ in installations.events("acme"))
    # With a UID the same installation goes on.
    installations.patch_spec("acme", {"security": RESTRICTED_SECURITY})
    installations.wait_condition("acme", "Degraded", "False", timeout=180)
    installations.wait_settled("acme", "0.8.0", timeout=300)
    wait_pods_gone(installations)
