"""What this process last wrote: the manifest it applied to each child of an installation, so that a
pass skips the server-side applies that would change nothing (`AppliedCache`); and the resourceVersion
its last status patch of each installation made, so that the watch event echoing it wakes no pass
(`StatusWrites`).

An idle pass used to send one server-side apply per Deployment and Service (six or seven PATCH requests,
each a full managed-fields merge in the apiserver) only to hear that nothing changed. An apply is now
skipped when all of these hold:

- this process applied exactly this manifest (same digest) to the object before;
- the object as listed in this pass is still at the version that apply returned: its generation for
  kinds that have one (a Deployment's only changes with its spec, by anyone, not with its status, which
  changes all through a rollout), else its resourceVersion (a Service). So an edit of the spec by
  someone else, or a deletion, is undone by the next pass;
- that apply is less than `reapply_after` seconds old: a periodic apply is kept as a backstop.

Anything else (a first pass after start-up or a leader change, a spec or version change, an edit by
someone else, an object deleted) applies as before. No I/O here: the caller lists and applies.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]  # namespace, installation name
Child = tuple[str, str]  # kind, name

REAPPLY_AFTER = 3600.0
"""Seconds after which an unchanged child is applied again anyway."""


def digest(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def version_of(obj: Mapping[str, Any]) -> str | None:
    """What changes when someone changes what an apply sets: the generation where the kind has one,
    else the resourceVersion."""
    meta = obj.get("metadata", {}) or {}
    if meta.get("generation"):
        return f"generation {meta['generation']}"
    if meta.get("resourceVersion"):
        return f"resourceVersion {meta['resourceVersion']}"
    return None


def live_versions(children: Mapping[str, Any]) -> dict[Child, str]:
    """(kind, name) → `version_of` every listed child (as `kube.Kube.list_children` returns them)."""
    kinds = {"deployments": "Deployment", "services": "Service", "jobs": "Job"}
    out: dict[Child, str] = {}
    for key, kind in kinds.items():
        for obj in children.get(key, []) or []:
            name, version = (obj.get("metadata", {}) or {}).get("name"), version_of(obj)
            if name and version:
                out[(kind, name)] = version
    return out


@dataclass(frozen=True)
class _Applied:
    digest: str
    version: str
    at: float


@dataclass
class AppliedCache:
    reapply_after: float = REAPPLY_AFTER
    clock: Callable[[], float] = time.monotonic
    _entries: dict[Key, dict[Child, _Applied]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def needed(self, key: Key, manifest: Mapping[str, Any], live: Mapping[Child, str]) -> bool:
        """Whether `manifest` must be applied, given the children's versions listed this pass."""
        child = (str(manifest["kind"]), str(manifest["metadata"]["name"]))
        with self._lock:
            last = self._entries.get(key, {}).get(child)
        if last is None or live.get(child) != last.version:
            return True
        return last.digest != digest(manifest) or self.clock() - last.at >= self.reapply_after

    def record(self, key: Key, manifest: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """What an apply of `manifest` returned (the object as stored)."""
        child = (str(manifest["kind"]), str(manifest["metadata"]["name"]))
        version = version_of(result)
        with self._lock:
            entries = self._entries.setdefault(key, {})
            if version:
                entries[child] = _Applied(digest(manifest), version, self.clock())
            else:
                entries.pop(child, None)

    def forget(self, key: Key) -> None:
        """The installation is gone, or a pass failed part-way: the next pass applies everything."""
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._entries.values())


@dataclass
class StatusWrites:
    """The resourceVersion this process's last status patch of each installation stored. The watch event
    at exactly that version is the echo of the write: nothing else changed with it."""

    _versions: dict[Key, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, namespace: str, name: str, resource_version: str) -> None:
        with self._lock:
            self._versions[(namespace, name)] = resource_version

    def echo(self, namespace: str, name: str, resource_version: str | None) -> bool:
        """Whether the installation at `resource_version` is exactly what the last own status patch stored."""
        with self._lock:
            return bool(resource_version) and self._versions.get((namespace, name)) == resource_version

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._versions.pop((namespace, name), None)
