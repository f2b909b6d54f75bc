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

After a start-up or a leader change this process remembers nothing, and a fleet's first passes used to
apply every child once (at 500 installations, 3,500 PATCH requests into an apiserver already busy with
the restart). So each applied object carries the digest of its manifest (`stamped`, annotation
`tracardi.com/manifest-digest`), and a child this process has no record of is taken as applied when
(`applied_as`):

- its annotation names the digest of the manifest the pass would apply now (a manifest that drops a
  field has another digest, so a field left behind by an older manifest is still removed), and
- every value the manifest sets is what the listed object holds (`contains`): an edit of one of our
  fields by someone else, since our apply, shows as a difference and is undone by an apply. Values the
  apiserver writes in another form (a quantity, an empty list it drops) show as a difference too: they
  cost an apply, never a skipped one.

Anything else (a spec or version change, an edit by someone else, an object deleted) applies as before.
No I/O here: the caller lists and applies.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator.labels import ANNOTATION_MANIFEST_DIGEST

Key = tuple[str, str]  # namespace, installation name
Child = tuple[str, str]  # kind, name

REAPPLY_AFTER = 3600.0
"""Seconds after which an unchanged child is applied again anyway."""


def digest(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def stamped(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest as applied: its metadata annotated with its own digest (taken without the annotation)."""
    meta = dict(manifest.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_MANIFEST_DIGEST: digest(manifest)}
    return {**manifest, "metadata": meta}


def contains(live: Any, want: Any) -> bool:
    """Whether the object `live` holds every value `want` sets. Maps: each key of `want`, recursively (a
    null in `want` asks for the key's absence). Lists of named items (containers, env, ports, volumes):
    each named item of `want` in `live` by name, recursively. Other lists: the same length, item by item.
    An empty map or list in `want` is matched by an absent or empty one.

    The apiserver merges some named lists by another key (ports by port number and protocol), but the
    by-name match errs only towards "not contained": the item found by name must still hold every value
    `want` sets (the port number too), and names are unique in such a list (validation refuses two
    ports of one name). So a wrong answer costs an apply, never a skipped one."""
    if isinstance(want, Mapping):
        return isinstance(live, Mapping) and all(_holds(live, k, v) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(live, list):
            return False
        if all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in want):
            named = {item.get("name"): item for item in live if isinstance(item, Mapping)}
            return all(item["name"] in named and contains(named[item["name"]], item) for item in want)
        return len(live) == len(want) and all(contains(got, item) for got, item in zip(live, want, strict=True))
    return bool(live == want)


def _holds(live: Mapping[str, Any], key: str, want: Any) -> bool:
    if want is None:
        return live.get(key) is None
    if want == {} or want == []:  # the apiserver drops what is empty
        return live.get(key) in (None, {}, [])
    return key in live and contains(live[key], want)


def applied_as(obj: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    """Whether the listed object is `manifest` as an earlier apply (by any process) left it, with nothing
    it sets changed since (see the module's docstring)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    # The items of a list answer carry no apiVersion and kind; the child's key already says its kind.
    sets = {k: v for k, v in stamped(manifest).items() if k not in ("apiVersion", "kind")}
    return annotations.get(ANNOTATION_MANIFEST_DIGEST) == digest(manifest) and contains(obj, sets)


def version_of(obj: Mapping[str, Any]) -> str | None:
    """What changes when someone changes what an apply sets: the generation where the kind has one,
    else the resourceVersion."""
    meta = obj.get("metadata", {}) or {}
    if meta.get("generation"):
        return f"generation {meta['generation']}"
    if meta.get("resourceVersion"):
        return f"resourceVersion {meta['resourceVersion']}"
    return None


def live_children(children: Mapping[str, Any]) -> dict[Child, Mapping[str, Any]]:
    """(kind, name) → every listed child (as `kube.Kube.list_children` returns them)."""
    kinds = {"deployments": "Deployment", "services": "Service", "jobs": "Job"}
    out: dict[Child, Mapping[str, Any]] = {}
    for key, kind in kinds.items():
        for obj in children.get(key, []) or []:
            name = (obj.get("metadata", {}) or {}).get("name")
            if name:
                out[(kind, name)] = obj
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

    def needed(self, key: Key, manifest: Mapping[str, Any], live: Mapping[Child, Mapping[str, Any]]) -> bool:
        """Whether `manifest` must be applied, given the children listed this pass (`live_children`)."""
        child = (str(manifest["kind"]), str(manifest["metadata"]["name"]))
        obj = live.get(child)
        version = version_of(obj) if obj is not None else None
        with self._lock:
            last = self._entries.get(key, {}).get(child)
        if last is None:
            if obj is None or version is None or not applied_as(obj, manifest):
                return True
            with self._lock:  # applied before this process knew it (a restart): remembered from now on
                self._entries.setdefault(key, {})[child] = _Applied(digest(manifest), version, self.clock())
            return False
        if version != last.version:
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
