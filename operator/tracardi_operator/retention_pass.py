"""The retention part of a reconcile pass: read the inputs (the cluster-wide listings, shared by the
passes for a few seconds), run `retention.execution.run`, write the status `retention.status` derives
from its outcome, post the Events.

A run writes status twice before it deletes anything (the plan, then each version as Deleting with
the names about to go); its outcome is written once, after it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tracardi_operator.elastic import ElasticAdapter
from tracardi_operator.indices import VersionId
from tracardi_operator.kube import Kube, safe_error
from tracardi_operator.models import RetentionStatus, TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.retention import execution
from tracardi_operator.retention import status as retention_status
from tracardi_operator.retention.evidence import cluster_key, cluster_live, images_by_instance
from tracardi_operator.retention.inventory import InventoryCache

log = logging.getLogger("tracardi_operator")

Model = TypeVar("Model", bound=BaseModel)
LISTING_TTL = 10.0
"""Seconds a cluster-wide listing serves every pass."""
PARSED_MAX = 4096
"""Validated installations kept by resourceVersion (`Listings.parsed`)."""


def validated(model: type[Model], items: list[dict[str, Any]]) -> list[Model]:
    """The items the model accepts (an invalid object is left out: its own status says why)."""
    out = []
    for raw in items:
        try:
            out.append(model.model_validate(raw))
        except ValidationError:
            continue
    return out


@dataclass
class Listings:
    """Cluster-wide listings (policies, installations, deployments) shared by the passes for `ttl` seconds."""

    kube: Kube
    ttl: float = LISTING_TTL
    _items: dict[str, tuple[float, list[dict[str, Any]]]] = field(default_factory=dict)
    _parsed: dict[tuple[str, str], TracardiInstallation] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, kind: str, fresh: bool = False) -> list[dict[str, Any]]:
        """The listing, read again when older than the ttl or `fresh`."""
        at, items = self._items.get(kind, (0.0, []))
        if fresh or time.monotonic() - at > self.ttl:
            items = self.kube.list_cluster(kind)
            self._items[kind] = (time.monotonic(), items)
        return items

    def forget(self, kind: str) -> None:
        self._items.pop(kind, None)

    def parsed(self, raw: Mapping[str, Any]) -> TracardiInstallation:
        """A listed installation validated, once per resourceVersion: every idle pass reads every other
        installation of the cluster, and validating them all again each time grows with the square of
        the fleet. Raises ValidationError, uncached, for an object the model refuses."""
        meta = raw.get("metadata") or {}
        key = (str(meta.get("uid", "")), str(meta.get("resourceVersion", "")))
        with self._lock:
            found = self._parsed.get(key)
        if found is not None and key[1]:
            return found
        model = TracardiInstallation.model_validate(raw)
        with self._lock:
            if len(self._parsed) >= PARSED_MAX:
                self._parsed.clear()  # simple bound: a fleet's worth is read again once
            self._parsed[key] = model
        return model


@dataclass
class _Inputs:
    """A run's inputs from the listings: the policies and the pairs live on the installation's cluster,
    and the others (namespace/name) that share one of its pairs, as last read."""

    listings: Listings
    inst: TracardiInstallation
    identity: str | None
    shared: list[str] = field(default_factory=list)

    def read(self, fresh: bool = False) -> tuple[list[TracardiRetentionPolicy], set[VersionId]]:
        # An invalid policy governs nothing (its own status says why).
        policies = validated(TracardiRetentionPolicy, self.listings.get("policies", fresh=fresh))
        images = images_by_instance(self.listings.get("deployments", fresh=fresh))
        live, found = cluster_live(self.inst, self.identity, self.listings.get("installations", fresh=fresh), images,
                                   parse=self.listings.parsed)
        self.shared = sorted(found)
        return policies, live


@dataclass(frozen=True)
class _Effects:
    """What a retention run asks of the pass: status written before anything goes, inputs read again."""

    kube: Kube
    inst: TracardiInstallation
    old_retention: Mapping[str, Any]
    inputs: _Inputs

    def publish(self, plan: RetentionStatus) -> None:
        patch = {"retention": retention_status.retention_patch(self.old_retention, plan)}
        self.kube.patch_status(self.inst.namespace, self.inst.name, patch)

    def recheck(self) -> execution.Fresh:
        inst = self.inst
        policies, live = self.inputs.read(fresh=True)
        raw = self.kube.get_installation(inst.namespace, inst.name)
        current = None
        if raw is not None and not raw.get("metadata", {}).get("deletionTimestamp"):
            with contextlib.suppress(ValidationError):
                current = TracardiInstallation.model_validate(raw)
        return execution.Fresh(policies, live, current, self.kube.namespace_labels(inst.namespace))

    def record_deleting(self, names: execution.Names) -> None:
        """Deleting, with the names about to go, recorded before they go (a failed patch stops the run)."""
        inst = self.inst
        raw = self.kube.get_installation(inst.namespace, inst.name) or {}
        records = retention_status.mark_deleting((raw.get("status") or {}).get("versions") or [], names)
        self.kube.patch_status(inst.namespace, inst.name, {"versions": records})


@dataclass
class RetentionPass:
    kube: Kube
    listings: Listings
    inventories: InventoryCache = field(default_factory=InventoryCache)
    metrics: Any = None

    def run(self, inst: TracardiInstallation, body: Mapping[str, Any], adapter: ElasticAdapter,
            now: dt.datetime) -> None:
        """One retention run of an idle installation (`inst.status` as the pass decided it, `body` as read)."""
        written: Mapping[str, Any] = body.get("status") or {}
        try:
            identity = self.inventories.get(cluster_key(inst), adapter).raw.cluster_uuid
        except Exception as e:
            log.warning("could not read the index inventory of %s/%s: %s", inst.namespace, inst.name,
                        safe_error(e))
            self._write(inst, body, retention_status.unreadable(
                inst.status.conditions, written, type(e).__name__, now=now, generation=inst.metadata.generation))
            return
        inputs = _Inputs(self.listings, inst, identity)
        policies, live = inputs.read()
        ns_labels = self.kube.namespace_labels(inst.namespace)
        effects = _Effects(self.kube, inst, written.get("retention") or {}, inputs)
        try:
            outcome = execution.run(inst, adapter, self.inventories, policies, ns_labels, live, now, effects)
        except Exception as e:
            log.warning("retention of %s/%s failed, next try on the next cycle: %s", inst.namespace, inst.name,
                        safe_error(e))
            return
        self._write(inst, body, retention_status.after_run(
            inst.status, written, outcome, identity=identity, shared=inputs.shared, now=now,
            generation=inst.metadata.generation))
        if self.metrics is not None:
            self.metrics.gc_planned(inst.namespace, inst.name, outcome.planned_indices)
            if outcome.deleted_indices:
                self.metrics.gc_deleted(inst.namespace, inst.name, outcome.deleted_indices)

    def _write(self, inst: TracardiInstallation, body: Mapping[str, Any],
               change: retention_status.StatusChange) -> None:
        if change.patch:
            self.kube.patch_status(inst.namespace, inst.name, change.patch)
        for type_, reason, message in change.events:
            self.kube.event(body, type_, reason, message)
