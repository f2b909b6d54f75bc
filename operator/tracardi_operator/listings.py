"""The cluster-wide listings retention reads on every idle pass (retention policies, installations, and
the Deployments the operator manages), kept current by the watches' events instead of read again by
each pass.

A listing is read whole once, then every watch event of its kind is applied to it (`Listings.observe`),
and it is read whole again every `ttl` seconds: a watch that reconnects lists again but says nothing of
what was deleted meanwhile, so an object may stay behind until that re-read, which keeps more, never
less. A reader that decides a deletion asks for `fresh`, a whole read at once.

What every pass derives from the listings alone (the evidence of every installation, the namespaces'
labels) is derived once per change of them and shared (`Listings.derived`); a `fresh` read derives its
own.

A whole read and the events that arrive while it is in flight are merged by resourceVersion (`merge`):
the read is a snapshot at the collection's resourceVersion, and an event newer than the snapshot wins
over it, a deletion included. When a resourceVersion is not a number (the API promises nothing about
their form), the read alone is kept, as it would be without the watch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from pydantic import ValidationError

from tracardi_operator.models import TracardiInstallation
from tracardi_operator.readgate import ReadGate

Kind = Literal["policies", "installations", "deployments", "namespaces"]
Key = tuple[str, str]
Object = dict[str, Any]
T = TypeVar("T")

LISTING_TTL = 300.0
"""Seconds between two whole reads of a listing the watch keeps current."""
PARSED_MAX = 4096
"""Installations whose validated model is kept (`Listings.parsed`): one model each, its latest version."""


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def revision(value: Any) -> int | None:
    """A resourceVersion as a number, None when it is not one."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _revision_of(obj: Mapping[str, Any]) -> int | None:
    return revision((obj.get("metadata") or {}).get("resourceVersion"))


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object without its resourceVersion: what a derived value can depend on."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


def merge(snapshot: str, listed: list[Object], current: Mapping[Key, Object],
          deleted: Mapping[Key, int]) -> dict[Key, Object]:
    """A whole read at collection resourceVersion `snapshot`, with what the watch delivered meanwhile:
    `current` (the listing as the events left it) and `deleted` (the resourceVersion each deletion was
    delivered at). An object the watch delivered after the snapshot replaces the one read; one deleted
    after the snapshot is left out. Without numeric resourceVersions, the read as it is."""
    out = {key_of(obj): obj for obj in listed}
    at = revision(snapshot)
    if at is None:
        return out
    for key, obj in current.items():
        seen = _revision_of(obj)
        if seen is not None and seen > at:
            out[key] = obj
    for key, gone_at in deleted.items():
        kept = out.get(key)
        if gone_at > at and kept is not None and (_revision_of(kept) or 0) < gone_at:
            del out[key]
    return out


@dataclass
class _Listing:
    read_at: float
    objects: dict[Key, Object]
    deleted: dict[Key, int] = field(default_factory=dict)
    """Deletions the watch delivered since the last whole read began, by resourceVersion."""


ReadWhole = Callable[[Kind], tuple[str, list[Object]]]


@dataclass
class Listings:
    """The cluster-wide listings shared by every pass (see the module's docstring)."""

    read_whole: ReadWhole
    """One whole read: the collection's resourceVersion and its items (`Kube.list_cluster_at`)."""
    ttl: float = LISTING_TTL
    clock: Callable[[], float] = time.monotonic
    _listings: dict[str, _Listing] = field(default_factory=dict)
    _parsed: dict[str, tuple[str, TracardiInstallation]] = field(default_factory=dict)
    """The model of each installation by uid, with the resourceVersion it was validated at."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gate: ReadGate[Kind, list[Object]] = field(default_factory=ReadGate)
    """Held per kind by the pass that reads a due listing whole (not for `fresh`)."""
    _changes: dict[Kind, int] = field(default_factory=dict)
    """How often each listing changed (a whole read, an event applied): what a derived value is kept by."""
    _derived: dict[str, tuple[tuple[int, ...], Any]] = field(default_factory=dict)

    def get(self, kind: Kind, fresh: bool = False) -> list[Object]:
        """The listing as the watch keeps it; read whole first when never read, older than the ttl, or
        `fresh`. While one pass reads a due listing whole, the others are served the kept one (the
        watch keeps it current meanwhile) instead of reading it whole too; a pass that finds none kept
        waits for that read (`readgate.ReadGate`). A `fresh` read is always its own: it must start
        after it was asked for."""
        if fresh:
            return self._read(kind)
        return self._gate.serve(kind, current=lambda: self._kept(kind, current=True),
                                kept=lambda: self._kept(kind, current=False), read=lambda: self._read(kind))

    def _kept(self, kind: Kind, current: bool) -> list[Object] | None:
        """The listing kept (`current`: only when it is not due to be read whole), or None."""
        with self._lock:
            listing = self._listings.get(kind)
            if listing is None or (current and not self._current(listing)):
                return None
            return list(listing.objects.values())

    def _current(self, listing: _Listing) -> bool:
        return self.clock() - listing.read_at <= self.ttl

    def _read(self, kind: Kind) -> list[Object]:
        started = self.clock()
        snapshot, items = self.read_whole(kind)
        with self._lock:
            listing = self._listings.get(kind)
            if listing is None:
                listing = self._listings[kind] = _Listing(started, merge(snapshot, items, {}, {}))
                self._changed(kind)
            else:
                listing.objects = merge(snapshot, items, listing.objects, listing.deleted)
                at = revision(snapshot)
                listing.deleted = {k: r for k, r in listing.deleted.items() if at is not None and r > at}
                listing.read_at = max(listing.read_at, started)
            self._changed(kind)
            if kind == "installations":  # the model of one whose deletion no event delivered goes too
                uids = {_uid_of(o) for o in listing.objects.values()}
                self._parsed = {uid: kept for uid, kept in self._parsed.items() if uid in uids}
            return list(listing.objects.values())

    def observe(self, kind: Kind, event: str | None, obj: Object) -> bool:
        """One watch event (`event` None: the watch's own listing) applied to a listing already read; a
        listing never read is read whole when first needed. Whether the listing's content changed (not
        only a resourceVersion)."""
        key = key_of(obj)
        with self._lock:
            if kind == "installations" and event == "DELETED":
                self._parsed.pop(_uid_of(obj), None)
            listing = self._listings.get(kind)
            if listing is None:
                return False
            if event == "DELETED":
                gone = listing.objects.pop(key, None) is not None
                gone_at = _revision_of(obj)
                if gone_at is not None:
                    listing.deleted[key] = gone_at
                if gone:
                    self._changed(kind)
                return gone
            was = listing.objects.get(key)
            newer, older = _revision_of(obj), _revision_of(was) if was is not None else None
            if newer is not None and older is not None and newer < older:
                return False  # a late event: the listing already holds a newer state
            listing.objects[key] = obj
            listing.deleted.pop(key, None)
            moved = was is None or _content(was) != _content(obj)
            if moved:
                self._changed(kind)
            return moved

    def _changed(self, kind: Kind) -> None:
        """Under the lock: a listing changed, so what was derived from it is derived again."""
        self._changes[kind] = self._changes.get(kind, 0) + 1

    def derived(self, name: str, kinds: tuple[Kind, ...], derive: Callable[[list[list[Object]]], T]) -> T:
        """`derive` of the listings of `kinds` (as `get` serves them), kept under `name` until one of them
        changes: every idle pass asks for the same value, and deriving it reads every object. A value is
        kept only when no listing changed while it was read, so what is kept is what those listings
        held. Never for a decision that needs a `fresh` read."""
        with self._lock:
            before = self._counts(kinds)
            kept = self._derived.get(name)
            if kept is not None and kept[0] == before and all(self._kept_current(kind) for kind in kinds):
                return cast(T, kept[1])
        listed = [self.get(kind) for kind in kinds]
        with self._lock:
            after = self._counts(kinds)
        if after != before:  # read whole just now (the first time, after the ttl) or an event meanwhile
            held = [self._kept(kind, current=False) for kind in kinds]
            before, listed = after, [now if now is not None else then for now, then in zip(held, listed, strict=True)]
        value = derive(listed)
        with self._lock:
            if self._counts(kinds) == before:
                self._derived[name] = (before, value)
        return value

    def _counts(self, kinds: tuple[Kind, ...]) -> tuple[int, ...]:
        return tuple(self._changes.get(kind, 0) for kind in kinds)

    def _kept_current(self, kind: Kind) -> bool:
        """Under the lock: whether the listing of `kind` was read and is not due to be read whole."""
        listing = self._listings.get(kind)
        return listing is not None and self._current(listing)

    def valid_installations(self) -> list[TracardiInstallation]:
        """Every listed installation the model accepts (an invalid one's own status says why)."""
        out = []
        for raw in self.get("installations"):
            try:
                out.append(self.parsed(raw))
            except ValidationError:
                continue
        return out

    def parsed(self, raw: Mapping[str, Any]) -> TracardiInstallation:
        """A listed installation validated, once per resourceVersion: every idle pass reads every other
        installation of the cluster, and validating them all again each time grows with the square of
        the fleet. One model is kept per installation, the latest version validated: every status write
        makes a version, and keeping each of them grew with the writes, not the fleet. Raises
        ValidationError, uncached, for an object the model refuses."""
        uid, version = _uid_of(raw), str((raw.get("metadata") or {}).get("resourceVersion", ""))
        with self._lock:
            found = self._parsed.get(uid)
        if found is not None and version and found[0] == version:
            return found[1]
        model = TracardiInstallation.model_validate(raw)
        with self._lock:
            if uid not in self._parsed and len(self._parsed) >= PARSED_MAX:
                self._parsed.clear()  # simple bound: a fleet's worth is read again once
            self._parsed[uid] = (version, model)
        return model

    def parsed_count(self) -> int:
        """How many installations' models are kept."""
        with self._lock:
            return len(self._parsed)


def _uid_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))
