"""Follows, while the end-to-end tests run, every Event of the cluster and the status of every
installation and retention policy, and records where a secret value shows up.

Listing them once at the end would miss most: the tests delete their namespaces, and the Events and
objects in them go too. A watch sees each version as it is written. Logs are files that outlast their
pods, so `scan_for_secrets` reads those at the end."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Source = tuple[str, Callable[..., Any], Callable[[dict[str, Any]], tuple[str, str]]]
"""(what it is, a list function of the client that can also watch, object -> (where, text to scan))."""


def _event(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return f"Event {meta.get('namespace')}/{meta.get('name')}", json.dumps(obj)


def _status(plural: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
    def where(obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return f"{plural} {meta.get('namespace')}/{meta.get('name')} status", json.dumps(obj.get("status"))

    return where


class SecretWatch:
    """Three watches (Events, installations, retention policies) on threads of their own."""

    def __init__(self, kube_api: Any, needles: Sequence[bytes], group: str, version: str,
                 plurals: Iterable[str]) -> None:
        from kubernetes import client

        core = client.CoreV1Api(kube_api)
        custom = client.CustomObjectsApi(kube_api)
        self._sources: list[Source] = [("events", core.list_event_for_all_namespaces, _event)]
        for plural in plurals:
            def list_of(plural: str = plural, **kw: Any) -> Any:
                return custom.list_cluster_custom_object(group, version, plural, **kw)

            self._sources.append((plural, list_of, _status(plural)))
        self._needles = [(n, n.decode()) for n in needles]
        self._lock = threading.Lock()
        self._leaks: set[str] = set()
        self.seen: dict[str, int] = {name: 0 for name, _, _ in self._sources}
        self.interruptions: list[str] = []  # streams broken and listed again (apiserver restarts)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._follow, args=(s,), name=f"secretwatch-{s[0]}", daemon=True)
                         for s in self._sources]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def leaks(self) -> list[str]:
        with self._lock:
            return sorted(self._leaks)

    def take(self, prefix: str) -> list[str]:
        """The leaks recorded at places starting with `prefix`, forgotten from now on (a test that plants
        a secret on purpose takes what it planted)."""
        with self._lock:
            taken = sorted(leak for leak in self._leaks if leak.startswith(prefix))
            self._leaks.difference_update(taken)
            return taken

    def check(self, name: str, where: str, text: str) -> None:
        raw = text.encode()
        found = [f"{where}: {shown}" for needle, shown in self._needles if needle in raw]
        with self._lock:
            self.seen[name] += 1
            self._leaks.update(found)

    def _follow(self, source: Source) -> None:
        """List, then watch from the listing's resourceVersion; on a gone version (410) or a broken stream
        (the apiserver restarted) list again. Each listing rescans what is there; a leak is recorded once."""
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        name, list_fn, where_of = source
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listing = list_fn(_preload_content=False)
                    body = json.loads(listing.data)
                    for obj in body.get("items") or []:
                        self.check(name, *where_of(obj))
                    version = body["metadata"]["resourceVersion"]
                w = watch.Watch()
                for event in w.stream(list_fn, resource_version=version, timeout_seconds=5):
                    obj = event.get("raw_object") or {}
                    if event.get("type") == "ERROR":
                        version = None
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event.get("type") != "DELETED":  # its last content was seen when it was written
                        self.check(name, *where_of(obj))
                    if self._stop.is_set():
                        break
            except ApiException as e:
                version = None if e.status == 410 else version
                self._stop.wait(1)
            except Exception as e:  # a stream broken by a restarted apiserver: list again
                if not self._stop.is_set() and len(self.interruptions) < 100:
                    self.interruptions.append(f"{name}: {type(e).__name__}: {e}")
                version = None
                self._stop.wait(1)
