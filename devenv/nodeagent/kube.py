"""The only module of the node agent that talks to the Kubernetes API: plain JSON dicts in and out
(no model deserialisation), list+watch with 410 handling, and a retry helper with back-off."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from devenv.nodeagent.rules import Json

log = logging.getLogger("nodeagent.kube")
T = TypeVar("T")


class WatchExpiredError(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


def status_of(exc: BaseException) -> int | None:
    return int(exc.status) if isinstance(exc, ApiException) and exc.status else None


def retry(fn: Callable[[], T], what: str, stop: threading.Event, attempts: int = 6) -> T:
    """Call `fn` until it succeeds; back off 0.5 s doubling to 8 s between attempts. 404/409/403/422
    are answers, not failures: they are raised at once."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except ApiException as exc:
            if exc.status in (403, 404, 409, 410, 422) or attempt == attempts or stop.is_set():
                raise
            log.warning("%s: HTTP %s, retrying in %.1fs", what, exc.status, delay)
        except Exception as exc:
            if attempt == attempts or stop.is_set():
                raise
            log.warning("%s: %s, retrying in %.1fs", what, exc, delay)
        stop.wait(delay)
        delay = min(8.0, delay * 2)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ApiServer:
    host: str
    port: int
    ca_pem: bytes


class Kube:
    def __init__(self, kubeconfig: str) -> None:
        self.api_client = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.coordination = client.CoordinationV1Api(self.api_client)
        self.version_api = client.VersionApi(self.api_client)
        cfg = self.api_client.configuration
        url = urlsplit(cfg.host)
        ca = b""
        if cfg.ssl_ca_cert:
            with open(cfg.ssl_ca_cert, "rb") as f:
                ca = f.read()
        self.server = ApiServer(host=url.hostname or "127.0.0.1", port=url.port or 443, ca_pem=ca)

    @staticmethod
    def _json(resp: Any) -> Json:
        data = resp.data
        result: Json = json.loads(data) if data else {}
        return result

    # -- pods ----------------------------------------------------------------------------------------------

    def list_pods(self, field_selector: str) -> tuple[list[Json], str]:
        body = self._json(self.core.list_pod_for_all_namespaces(
            field_selector=field_selector, _preload_content=False, _request_timeout=60))
        return list(body.get("items") or []), str(body["metadata"]["resourceVersion"])

    def watch_pods(
        self, field_selector: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, Json]]:
        """(type, object) events; BOOKMARKs come through with their resourceVersion. Raises WatchExpiredError on 410."""
        resp = self.core.list_pod_for_all_namespaces(
            field_selector=field_selector, watch=True, resource_version=resource_version,
            timeout_seconds=timeout_seconds, allow_watch_bookmarks=True, _preload_content=False,
            _request_timeout=(10, timeout_seconds + 30))
        try:
            buf = b""
            for chunk in resp.stream(65536, decode_content=False):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        obj = event.get("object") or {}
                        if obj.get("code") == 410:
                            raise WatchExpiredError(obj.get("message", "gone"))
                        raise RuntimeError(f"watch error: {obj.get('message', obj)}")
                    yield str(event["type"]), event["object"]
        finally:
            resp.close()
            resp.release_conn()

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        body = {
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        self.core.create_namespaced_pod_binding(name, namespace, body, _preload_content=False)

    def patch_pod_status(self, namespace: str, name: str, status: Json) -> None:
        self.core.patch_namespaced_pod_status(name, namespace, {"status": status}, _preload_content=False)

    def delete_pod_now(self, namespace: str, name: str, uid: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid}}
        self.core.delete_namespaced_pod(name, namespace, body=body, _preload_content=False)

    def get_pod(self, namespace: str, name: str) -> Json:
        return self._json(self.core.read_namespaced_pod(name, namespace, _preload_content=False))

    # -- what pods refer to ------------------------------------------------------------------------------

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            body = self._json(self.core.read_namespaced_secret(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (body.get("data") or {}).items()}
        data.update(body.get("stringData") or {})
        return data

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            body = self._json(self.core.read_namespaced_config_map(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = dict(body.get("data") or {})
        for k, v in (body.get("binaryData") or {}).items():
            data[k] = base64.b64decode(v).decode(errors="replace")
        return data

    def request_token(self, namespace: str, service_account: str, pod: str, pod_uid: str,
                      seconds: int) -> str:
        body = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": pod_uid},
            },
        }
        resp = self._json(self.core.create_namespaced_service_account_token(
            service_account, namespace, body, _preload_content=False))
        return str(resp["status"]["token"])

    # -- node and lease ------------------------------------------------------------------------------------

    def server_version(self) -> str:
        return str(self._json(self.version_api.get_code(_preload_content=False)).get("gitVersion", "v0.0.0"))

    def get_node(self, name: str) -> Json | None:
        try:
            return self._json(self.core.read_node(name, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_node(self, body: Json) -> Json:
        return self._json(self.core.create_node(body, _preload_content=False))

    def patch_node_status(self, name: str, status: Json) -> Json:
        return self._json(self.core.patch_node_status(name, {"status": status}, _preload_content=False))

    def renew_lease(self, node: str, node_uid: str, renew_time: str, duration: int) -> None:
        ns = "kube-node-lease"
        body: Json = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": ns,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": renew_time},
        }
        try:
            self.coordination.patch_namespaced_lease(
                node, ns, {"spec": body["spec"]}, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease(ns, body, _preload_content=False)


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def now_micro() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"
