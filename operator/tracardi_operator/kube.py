"""The Kubernetes adapter: one idempotent apply (server-side apply), create-once for Jobs, reads of
the children an installation owns, status patches and Events. No decisions live here."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import urllib3

from tracardi_operator import API_GROUP as GROUP
from tracardi_operator import API_VERSION as VERSION
from tracardi_operator.kubeclient import ApiError, KubeClient
from tracardi_operator.labels import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY, label_value
from tracardi_operator.models import INSTALLATION, RETENTION_POLICY

FIELD_MANAGER = "tracardi-operator"
MANAGED = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
"""The label selector of everything the operator manages (as its watches select it: `handlers.OURS`)."""
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
"""The Accept header of a listing of metadata only."""

log = logging.getLogger(__name__)

# apiVersion, kind → (path prefix, plural, namespaced) for the kinds the operator writes.
_KINDS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("batch/v1", "Job"): ("/apis/batch/v1", "jobs", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): (
        "/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
}


def safe_error(error: BaseException) -> str:
    """An error for the log: API errors by status and reason only (their bodies can echo objects)."""
    if isinstance(error, ApiError):
        return str(error)
    return f"{type(error).__name__}: {error}"[:500]


StatusWritten = Callable[[str, str, str], None]
"""Told (namespace, name, resourceVersion) of every installation status patch the operator sends."""


def deployment_evidence(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """Of a Deployment in the cluster-wide listing, only what retention reads (its namespace, name,
    labels and images, and the resourceVersion the listing is kept current by): the listing is kept
    between passes, and whole Deployments of a fleet are large."""
    meta = deployment.get("metadata") or {}
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {
        "metadata": {"namespace": meta.get("namespace"), "name": meta.get("name"), "labels": meta.get("labels") or {},
                     "resourceVersion": meta.get("resourceVersion")},
        "spec": {"template": {"spec": {"containers": [
            {"name": c.get("name"), "image": c.get("image")} for c in pod.get("containers") or []]}}},
    }


def namespace_evidence(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Of a Namespace in the cluster-wide listing, only what retention reads: its name and labels (and
    the resourceVersion the listing is kept current by)."""
    meta = namespace.get("metadata") or {}
    return {"metadata": {"name": meta.get("name"), "labels": dict(meta.get("labels") or {}),
                         "resourceVersion": meta.get("resourceVersion")}}


def without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of an object without metadata.managedFields (kept listings need none of it)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


class Kube:
    """Thin, typed calls over one shared client (built once at start-up)."""

    def __init__(self, api: KubeClient) -> None:
        self.api = api
        self.on_status_written: StatusWritten | None = None

    def _get(self, path: str, query: Sequence[tuple[str, str]] = (), accept: str = "application/json") -> Any:
        return self.api.request("GET", path, query=query, accept=accept)

    # -- writes -----------------------------------------------------------------------------------
    def _path(self, obj: Mapping[str, Any]) -> str:
        prefix, plural, namespaced = _KINDS[(obj["apiVersion"], obj["kind"])]
        meta = obj["metadata"]
        if namespaced:
            return f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
        return f"{prefix}/{plural}/{meta['name']}"

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply: create or converge to `obj`, idempotently; our fields win conflicts."""
        result = self.api.request(
            "PATCH", self._path(obj), query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=dict(obj), content_type="application/apply-patch+yaml",  # JSON is YAML
        )
        return dict(result or {})

    def create_once(self, obj: Mapping[str, Any]) -> bool:
        """Create `obj` unless an object of that name exists; True when this call created it.

        For Jobs: an existing Job is never patched or replaced (a migration must run exactly once).
        """
        prefix, plural, _ = _KINDS[(obj["apiVersion"], obj["kind"])]
        ns = obj["metadata"]["namespace"]
        try:
            self.api.request("POST", f"{prefix}/namespaces/{ns}/{plural}", query=[("fieldManager", FIELD_MANAGER)],
                             body=dict(obj))
        except ApiError as e:
            if e.status == 409:
                return False
            raise
        return True

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        prefix, plural, _ = _KINDS[(api_version, kind)]
        try:
            self.api.request("DELETE", f"{prefix}/namespaces/{namespace}/{plural}/{name}",
                             body={"propagationPolicy": "Background"})
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the installation's status subresource; `on_status_written` is told the
        resourceVersion the patch stored."""
        stored = self.api.request(
            "PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{INSTALLATION.plural}/{name}/status",
            body={"status": dict(status)}, content_type="application/merge-patch+json",
        )
        version = (stored or {}).get("metadata", {}).get("resourceVersion") if isinstance(stored, dict) else None
        if version and self.on_status_written is not None:
            self.on_status_written(namespace, name, str(version))

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.api.request("PATCH", f"/apis/{GROUP}/{VERSION}/{RETENTION_POLICY.plural}/{name}/status",
                         body={"status": dict(status)}, content_type="application/merge-patch+json")

    def event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """Post a core/v1 Event about `involved` (an installation or policy body). Never raises."""
        meta = involved["metadata"]
        ns = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reference = {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"), "name": meta["name"],
                     "namespace": meta.get("namespace"), "uid": meta.get("uid")}
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": ns},
            "involvedObject": {k: v for k, v in reference.items() if v is not None},
            "reason": reason, "message": message[:1024], "type": type_,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER, "reportingInstance": FIELD_MANAGER,
        }
        try:
            self.api.request("POST", f"/api/v1/namespaces/{ns}/events", body=body)
        except ApiError as e:
            # A 403 here means the operator's RBAC lacks events/create: people would miss every Event.
            level = logging.ERROR if e.status == 403 else logging.WARNING
            log.log(level, "could not post event %s: %s %s", reason, e.status, e.reason)
        except (urllib3.exceptions.HTTPError, OSError) as e:  # the apiserver out of reach: the pass goes on
            log.warning("could not post event %s: %s", reason, type(e).__name__)

    # -- reads ------------------------------------------------------------------------------------
    def ping(self) -> None:
        """One cheap authorised request: list at most one installation."""
        self._get(f"/apis/{GROUP}/{VERSION}/{INSTALLATION.plural}", [("limit", "1")])

    def unserved(self, paths: tuple[str, ...]) -> list[str]:
        """Those of the API group versions `paths` (e.g. /apis/batch/v1) whose discovery does not answer
        with resources yet: an apiserver starting up answers before it serves every group."""
        missing = []
        for path in paths:
            try:
                data = self._get(path)
            except Exception:
                missing.append(path)
                continue
            if not (data or {}).get("resources"):
                missing.append(path)
        return missing

    def installation_versions(self, namespaces: tuple[str, ...] = ()) -> dict[tuple[str, str], str]:
        """(namespace, name) → resourceVersion of every installation (in `namespaces`, when given): one
        listing of their metadata only."""
        data = self._get(f"/apis/{GROUP}/{VERSION}/{INSTALLATION.plural}",
                         accept=METADATA_ONLY)
        return _versions(data, namespaces)

    def child_versions(self, kind: str, namespaces: tuple[str, ...] = ()) -> dict[tuple[str, str], str]:
        """(namespace, name) → resourceVersion of every Deployment or Job (`kind`) the operator manages (in
        `namespaces`, when given): one listing of their metadata only, selected as their watch is."""
        prefix = {"deployments": "/apis/apps/v1", "jobs": "/apis/batch/v1"}[kind]
        data = self._get(f"{prefix}/{kind}", [("labelSelector", MANAGED)], accept=METADATA_ONLY)
        return _versions(data, namespaces)

    def get_installation(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{INSTALLATION.plural}/{name}"))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list_children(self, namespace: str, instance: str,
                      kinds: Sequence[str] = ("deployments", "services", "jobs", "pods"),
                      ) -> dict[str, list[dict[str, Any]]]:
        """The Deployments, Services, Jobs and Pods (`kinds`) of one installation, as plain dicts without
        metadata.managedFields (one list call per kind). No pass reads those, and an idle installation's
        Deployments and Jobs are kept between passes (`children`): with them, twice the memory."""
        # The builders label children with the installation's name as a label value (at most 63 characters).
        selector = f"{LABEL_INSTANCE}={label_value(instance)},{MANAGED}"
        out: dict[str, list[dict[str, Any]]] = {}
        for key, prefix, plural in (
            ("deployments", "/apis/apps/v1", "deployments"),
            ("services", "/api/v1", "services"),
            ("jobs", "/apis/batch/v1", "jobs"),
            ("pods", "/api/v1", "pods"),
        ):
            if key not in kinds:
                continue
            data = self._get(f"{prefix}/namespaces/{namespace}/{plural}", [("labelSelector", selector)])
            out[key] = [without_managed_fields(item) for item in (data or {}).get("items") or []]
        return out

    def failed_create(self, namespace: str, name: str) -> str:
        """The newest FailedCreate Event's message about object `name` (a Job), "" when there is none."""
        data = self._get(f"/api/v1/namespaces/{namespace}/events",
                         [("fieldSelector", f"involvedObject.name={name},reason=FailedCreate")])
        events = (data or {}).get("items") or []
        newest = max(events, key=_event_time, default=None)
        return str(newest.get("message") or "FailedCreate") if newest is not None else ""

    def list_cluster_at(self, kind: str) -> tuple[str, list[dict[str, Any]]]:
        """Every installation (all namespaces), every retention policy, every Deployment the operator
        manages (retention reads the versions they run as evidence of what is live), or every namespace
        (policies select by their labels), with the listing's resourceVersion (the point in time it
        shows)."""
        if kind == "namespaces":
            data = self._get("/api/v1/namespaces") or {}
            items = [namespace_evidence(n) for n in data.get("items") or []]
        elif kind == "deployments":
            data = self._get("/apis/apps/v1/deployments",
                             [("labelSelector", MANAGED)]) or {}
            items = [deployment_evidence(d) for d in data.get("items") or []]
        else:
            plural = {"installations": INSTALLATION.plural, "policies": RETENTION_POLICY.plural}[kind]
            data = self._get(f"/apis/{GROUP}/{VERSION}/{plural}") or {}
            items = [without_managed_fields(obj) for obj in data.get("items") or []]
        return str((data.get("metadata") or {}).get("resourceVersion") or ""), items

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        data = self._get(f"/api/v1/namespaces/{namespace}") or {}
        return dict((data.get("metadata") or {}).get("labels") or {})

    def secret_to_file(self, namespace: str, name: str, key: str) -> str | None:
        """Write one Secret value (a CA bundle) to a private temporary file; its path, or None."""
        import hashlib
        import os
        import tempfile

        value = self.read_secret_key(namespace, name, key)
        if value is None:
            return None
        digest = hashlib.sha256(value.encode()).hexdigest()[:16]
        path = os.path.join(tempfile.gettempdir(), f"tracardi-operator-ca-{digest}.pem")
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value)
        return path

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """Every key of one Secret, decoded; None when it does not exist."""
        import base64

        try:
            secret = self._get(f"/api/v1/namespaces/{namespace}/secrets/{name}") or {}
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        return (self.read_secret(namespace, name) or {}).get(key)


def _versions(data: Any, namespaces: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """(namespace, name) → resourceVersion of a metadata-only listing's items (in `namespaces`, when given)."""
    out = {}
    for item in (data or {}).get("items") or []:  # an empty metadata-only list says "items": null
        meta = item.get("metadata") or {}
        if not namespaces or meta.get("namespace") in namespaces:
            out[(str(meta.get("namespace", "")), str(meta.get("name", "")))] = str(meta.get("resourceVersion", ""))
    return out


def _event_time(event: Mapping[str, Any]) -> dt.datetime:
    """When an Event last happened: lastTimestamp, eventTime (MicroTime) or its creation, whichever it has."""
    stamp = event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get(
        "creationTimestamp")
    try:
        return dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
