"""The Kubernetes adapter's defaults (no server needed: the request never leaves the client)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tracardi_operator.kube import REQUEST_TIMEOUT, Kube, resource_of


def test_every_request_gets_a_timeout_unless_it_has_one() -> None:
    api = client.ApiClient(client.Configuration())
    seen: list[Any] = []

    def fake(method: str, url: str, *args: Any, **kwargs: Any) -> None:
        seen.append(kwargs.get("_request_timeout"))

    api.rest_client.request = fake
    Kube(api)
    api.rest_client.request("GET", "http://x/")
    api.rest_client.request("GET", "http://x/", _request_timeout=3)
    assert seen == [REQUEST_TIMEOUT, 3]


@pytest.mark.parametrize(("url", "resource"), [
    ("https://k:6443/api/v1/namespaces/shop/pods?labelSelector=x", "pods"),
    ("https://k:6443/api/v1/namespaces/shop/pods/acme-api-1", "pods"),
    ("https://k:6443/apis/apps/v1/deployments", "deployments"),
    ("https://k:6443/apis/apps/v1/namespaces/shop/deployments/acme-api", "deployments"),
    ("https://k:6443/apis/tracardi.com/v1alpha1/namespaces/shop/tracardiinstallations/acme/status",
     "tracardiinstallations/status"),
    ("https://k:6443/apis/tracardi.com/v1alpha1/tracardiretentionpolicies", "tracardiretentionpolicies"),
    ("https://k:6443/api/v1/namespaces/shop", "namespaces"),
    ("https://k:6443/version", "other"),
    ("https://k:6443/apis", "other"),
])
def test_requests_are_counted_by_resource(url: str, resource: str) -> None:
    assert resource_of(url) == resource


def test_every_request_of_the_client_is_observed() -> None:
    seen: list[tuple[str, str]] = []
    api = client.ApiClient(client.Configuration())
    api.rest_client.request = lambda *args, **kwargs: None  # type: ignore[method-assign]
    Kube(api, observe=lambda verb, resource: seen.append((verb, resource)))
    api.rest_client.request("get", "https://k/api/v1/namespaces/a/events")
    assert seen == [("GET", "events")]


def test_the_cluster_wide_deployment_listing_keeps_what_retention_reads() -> None:
    from tests.unit.test_builders import make_installation
    from tracardi_operator import builders
    from tracardi_operator.kube import deployment_evidence
    from tracardi_operator.retention.evidence import images_by_instance

    full = [{**builders.deployment(make_installation(), c, "0.8.2.1"), "status": {"replicas": 1}}
            for c in builders.SERVING_COMPONENTS]
    for i, d in enumerate(full):
        d["metadata"]["resourceVersion"] = str(100 + i)
    kept = [deployment_evidence(d) for d in full]
    assert [d["metadata"]["resourceVersion"] for d in kept] == [str(100 + i) for i in range(len(full))], \
        "the watch keeps the listing current by resourceVersion"
    assert images_by_instance(kept) == images_by_instance(full)
    assert images_by_instance(kept)[("shop", "acme")]
    assert all(set(d) == {"metadata", "spec"} for d in kept)
    assert len(str(kept)) * 4 < len(str(full)), "most of each Deployment is dropped"


def test_lists_that_answer_items_null_read_as_empty() -> None:
    """The apiserver answers an empty metadata-only listing with `"items": null`: the heartbeat read it as
    an error, and with no installation left the liveness clock stopped."""
    api = client.ApiClient(client.Configuration())

    def call_api(path: str, method: str, *_: Any, **__: Any) -> dict[str, Any]:
        return {"kind": "PartialObjectMetadataList", "items": None}

    api.call_api = call_api  # type: ignore[method-assign]
    kube = Kube(api)
    assert kube.installation_versions() == {}
    assert kube.list_children("ns", "acme") == {"deployments": [], "services": [], "jobs": [], "pods": []}
    assert kube.list_cluster_at("deployments") == ("", [])


def test_children_are_listed_without_managed_fields() -> None:
    """An idle installation's Deployments and Jobs are kept between passes (`children`), and their
    managedFields are as large as the rest of them: no pass reads those, so none are kept."""
    api = client.ApiClient(client.Configuration())
    item = {"metadata": {"name": "acme-api", "labels": {"a": "b"}, "resourceVersion": "7",
                         "managedFields": [{"manager": "tracardi-operator", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 2}, "status": {"readyReplicas": 2}}

    def call_api(path: str, method: str, *_: Any, **__: Any) -> dict[str, Any]:
        return {"items": [item]}

    api.call_api = call_api  # type: ignore[method-assign]
    listed = Kube(api).list_children("ns", "acme")
    expected = {"metadata": {"name": "acme-api", "labels": {"a": "b"}, "resourceVersion": "7"},
                "spec": {"replicas": 2}, "status": {"readyReplicas": 2}}
    assert listed == {kind: [expected] for kind in ("deployments", "services", "jobs", "pods")}
