"""The Kubernetes adapter's defaults (no server needed: the request never leaves the client)."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3

from tests.support.scripted_kube import ScriptedClient
from tracardi_operator.kube import Kube
from tracardi_operator.kubeclient import ApiError, resource_of


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
    kube = Kube(ScriptedClient(lambda *_: {"kind": "PartialObjectMetadataList", "items": None}))
    assert kube.installation_versions() == {}
    assert kube.list_children("ns", "acme") == {"deployments": [], "services": [], "jobs": [], "pods": []}
    assert kube.list_cluster_at("deployments") == ("", [])


def test_children_are_listed_without_managed_fields() -> None:
    """An idle installation's Deployments and Jobs are kept between passes (`children`), and their
    managedFields are as large as the rest of them: no pass reads those, so none are kept."""
    item = {"metadata": {"name": "acme-api", "labels": {"a": "b"}, "resourceVersion": "7",
                         "managedFields": [{"manager": "tracardi-operator", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 2}, "status": {"readyReplicas": 2}}

    listed = Kube(ScriptedClient(lambda *_: {"items": [item]})).list_children("ns", "acme")
    expected = {"metadata": {"name": "acme-api", "labels": {"a": "b"}, "resourceVersion": "7"},
                "spec": {"replicas": 2}, "status": {"readyReplicas": 2}}
    assert listed == {kind: [expected] for kind in ("deployments", "services", "jobs", "pods")}


def test_an_api_error_prints_its_status_and_never_its_body() -> None:
    """The body of an error can echo the object sent (a Secret's data): logs and conditions print the error."""
    error = ApiError(422, "Unprocessable Entity", b'{"kind":"Status","message":"data.password: s3cret-value"}')
    assert str(error) == "Kubernetes API 422 Unprocessable Entity"
    assert "s3cret" not in repr(error)
    assert "s3cret" not in str(error.args)
    assert error.details()["kind"] == "Status"
    assert ApiError(500, "x", b"<html>").details() == {}


def test_events_name_their_object_and_leave_out_what_it_lacks() -> None:
    kube = Kube(ScriptedClient())
    kube.event({"apiVersion": "tracardi.com/v1alpha1", "kind": "TracardiRetentionPolicy",
                "metadata": {"name": "keep-two", "uid": "u-1"}}, "Normal", "Planned", "x" * 2000)
    method, path, _, body = kube.api.sent[-1]  # type: ignore[attr-defined]
    assert (method, path) == ("POST", "/api/v1/namespaces/default/events")
    assert body["involvedObject"] == {"apiVersion": "tracardi.com/v1alpha1", "kind": "TracardiRetentionPolicy",
                                      "name": "keep-two", "uid": "u-1"}
    assert body["metadata"] == {"generateName": "keep-two.", "namespace": "default"}
    assert len(body["message"]) == 1024
    assert body["firstTimestamp"].endswith("Z")
    assert body["firstTimestamp"] == body["lastTimestamp"]


@pytest.mark.parametrize("error", [
    ApiError(403, "Forbidden"),
    urllib3.exceptions.MaxRetryError(None, "/api/v1/namespaces/shop/events", "refused"),  # type: ignore[arg-type]
    ConnectionRefusedError(111, "Connection refused"),
])
def test_an_event_that_cannot_be_posted_does_not_raise(error: Exception) -> None:
    def refuse(*_: Any) -> None:
        raise error

    Kube(ScriptedClient(refuse)).event({"metadata": {"name": "acme", "namespace": "shop"}}, "Warning", "R", "m")


def test_the_newest_failed_create_event_is_named_whatever_time_field_it_has() -> None:
    events = {"items": [
        {"message": "old", "lastTimestamp": "2026-12-07T10:00:00Z"},
        {"message": "newest", "eventTime": "2026-12-07T10:00:01.500000Z"},
        {"message": "no time", "metadata": {"creationTimestamp": "2026-12-07T09:00:00Z"}},
    ]}
    kube = Kube(ScriptedClient(lambda *_: events))
    assert kube.failed_create("shop", "acme-install") == "newest"
    assert Kube(ScriptedClient(lambda *_: {"items": []})).failed_create("shop", "acme-install") == ""


def test_missing_objects_read_as_none_and_other_errors_raise() -> None:
    def missing(*_: Any) -> None:
        raise ApiError(404, "Not Found")

    def broken(*_: Any) -> None:
        raise ApiError(500, "Internal Server Error")

    assert Kube(ScriptedClient(missing)).get_installation("shop", "acme") is None
    assert Kube(ScriptedClient(missing)).read_secret("shop", "creds") is None
    assert Kube(ScriptedClient(missing)).delete("apps/v1", "Deployment", "shop", "acme-api") is False
    with pytest.raises(ApiError):
        Kube(ScriptedClient(broken)).get_installation("shop", "acme")


def test_a_job_that_exists_is_never_created_again() -> None:
    def conflict(*_: Any) -> None:
        raise ApiError(409, "Conflict")

    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"namespace": "shop", "name": "acme-migrate"}}
    assert Kube(ScriptedClient(conflict)).create_once(job) is False
    created = ScriptedClient()
    assert Kube(created).create_once(job) is True
    assert created.sent[0][:2] == ("POST", "/apis/batch/v1/namespaces/shop/jobs")


def test_each_write_says_what_kind_of_patch_it_is() -> None:
    """Server-side apply, a merge patch of the status, a metadata-only listing: the apiserver reads the
    body by its content type, and a wrong one is a different operation or an error."""
    api = ScriptedClient(lambda *_: {"metadata": {"resourceVersion": "9"}, "items": []})
    kube = Kube(api)
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop", "name": "acme-api"}})
    kube.patch_status("shop", "acme", {"phase": "Ready"})
    kube.patch_policy_status("keep-two", {"observedGeneration": 1})
    kube.installation_versions()
    assert api.sent[0][:3] == ("PATCH", "/api/v1/namespaces/shop/services/acme-api",
                               {"fieldManager": "tracardi-operator", "force": "true"})
    assert api.sent[1][:2] == ("PATCH", "/apis/tracardi.com/v1alpha1/namespaces/shop/tracardiinstallations/acme/status")
    assert api.sent[2][:2] == ("PATCH", "/apis/tracardi.com/v1alpha1/tracardiretentionpolicies/keep-two/status")
    assert [h[0] for h in api.headers[:3]] == ["application/apply-patch+yaml", "application/merge-patch+json",
                                               "application/merge-patch+json"]
    assert api.headers[3][1] == "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def test_what_is_tried_again() -> None:
    """Refused or timed-out connections, for any request; nothing once a request may have been sent
    unless the request is idempotent; redirects never (the apiserver does not send them)."""
    from tracardi_operator.kubeclient import KubeClient

    retry = KubeClient._retry(3)
    assert (retry.total, retry.redirect, retry.other) == (3, 0, 0)
    assert not retry._is_method_retryable("POST")
    assert not retry._is_method_retryable("PATCH")
    assert retry._is_method_retryable("GET")
