"""An installation's children as its passes list them, with the listing of the kinds the operator
watches (Deployments, Jobs) kept from one idle pass to the next.

An idle installation's pass lists its Services and Pods every time, and its Deployments and Jobs only
when something may have changed them since its last listing: a watch event of one of them (any event,
the rollout's counts and the watch's re-listing after a reconnect included: `moved`), a pass of it that
wrote a child (`wrote`), or `relist` seconds gone by (a backstop for a watch that stops delivering).
A pass of an installation that is not idle (an upgrade under way, a version not reached yet) lists
everything, every time.

A kept listing holds each child without its pod template's spec (`kept_form`): no decision reads it
(`observe` reads a Deployment's template labels, replicas, generation and status, and a Job's name and
status), and it is most of a child's size. The listing a pass reads to decide is the same either way.
What reads the whole object, the check after a restart that a child is already as the pass would apply
it (`applied.applied_as`), runs on a pass that listed it whole; on a kept listing it finds the pod spec
missing and applies, which errs on the side of an apply.

The count of events is taken before the listing is read: an event that arrives while it is read counts
against it, so the listing is read again by the next pass rather than trusted.

A child's event counts for the installation whose instance label it carries, and also for the one whose
label it carried in its previous event: a child relabelled to another installation leaves the first one's
listing too. A child that loses the operator's managed-by label leaves its listing as a deletion: the
watches select by that label on the server (`handlers.startup`), which sends a DELETED event, with the
labels the child had, when an object stops matching.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator.labels import label_value

Key = tuple[str, str]
Listed = dict[str, list[dict[str, Any]]]
Read = Callable[[tuple[str, ...]], Listed]

WATCHED = ("deployments", "jobs")
"""The kinds whose every event reaches the operator (`handlers`): a kept listing of them stays true."""
UNWATCHED = ("services", "pods")
EVERY_KIND = (*WATCHED, *UNWATCHED)
RELIST_SECONDS = 900.0
"""The longest an idle installation's Deployments and Jobs go without being listed."""


def kept_form(obj: dict[str, Any]) -> dict[str, Any]:
    """A Deployment or Job as its kept listing holds it: without `spec.template.spec` (see the module's
    docstring); anything without a pod template as it is."""
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or not isinstance(template, dict):
        return obj
    slim = {k: v for k, v in template.items() if k != "spec"}
    return {**obj, "spec": {**spec, "template": slim}}


@dataclass
class _Kept:
    moves: int
    read_at: float
    listed: Listed


@dataclass
class ChildListings:
    """The kept listings of every installation (see the module's docstring)."""

    relist: float = RELIST_SECONDS
    clock: Callable[[], float] = time.monotonic
    _moves: dict[Key, int] = field(default_factory=dict)
    """Watch events of each installation's Deployments and Jobs, by (namespace, instance label)."""
    _kept: dict[Key, _Kept] = field(default_factory=dict)
    _owners: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """The instance label of each child as its last event said, by (kind, namespace, name)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def moved(self, kind: str, namespace: str, name: str, instance: str, gone: bool = False) -> str | None:
        """A watch event of the Deployment or Job `name` whose instance label is `instance` (`gone`: its
        deletion). The instance label it carried before, when that was another one, else None."""
        with self._lock:
            child = (kind, namespace, name)
            before = self._owners.pop(child, None) if gone else self._owners.get(child)
            if not gone:
                self._owners[child] = instance
            for owner in {o for o in (instance, before) if o}:
                key = (namespace, owner)
                self._moves[key] = self._moves.get(key, 0) + 1
            return before if before is not None and before != instance else None

    def wrote(self, namespace: str, name: str) -> None:
        """A pass of the installation applied, created or deleted a child: its next pass lists them."""
        with self._lock:
            self._kept.pop((namespace, name), None)

    def forget(self, namespace: str, name: str) -> None:
        label = label_value(name)
        with self._lock:
            self._kept.pop((namespace, name), None)
            self._moves.pop((namespace, label), None)
            for child in [c for c, owner in self._owners.items() if c[1] == namespace and owner == label]:
                del self._owners[child]

    def list(self, namespace: str, name: str, idle: bool, read: Read) -> Listed:
        """Every kind of the installation's children: read by `read(kinds)`, the watched kinds taken
        from the kept listing when the installation is `idle` and nothing moved them since."""
        key, label = (namespace, name), (namespace, label_value(name))
        with self._lock:
            moves = self._moves.get(label, 0)
            kept = self._kept.get(key)
            usable = (idle and kept is not None and kept.moves == moves
                      and self.clock() - kept.read_at <= self.relist)
        if usable and kept is not None:
            out = read(UNWATCHED)
            out.update({kind: list(kept.listed[kind]) for kind in WATCHED})
            return out
        started = self.clock()
        out = read(EVERY_KIND)
        with self._lock:
            if idle:
                self._kept[key] = _Kept(moves, started, {kind: [kept_form(o) for o in out.get(kind, [])]
                                                         for kind in WATCHED})
            else:
                self._kept.pop(key, None)
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
