"""The retention part of a reconcile pass: read the inputs (the cluster-wide listings the watches keep
current, `listings`), run `retention.execution.run`, write the status `retention.status` derives
from its outcome, post the Events.

A run writes status twice before it deletes anything (the plan, then each version as Deleting with
the names about to go); its outcome is written once, after it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tracardi_operator.elastic import ElasticAdapter
from tracardi_operator.indices import VersionId
from tracardi_operator.kube import Kube, safe_error
from tracardi_operator.listings import Listings
from tracardi_operator.models import RetentionStatus, TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.retention import execution
from tracardi_operator.retention import status as retention_status
from tracardi_operator.retention.evidence import FleetEvidence, cluster_key, fleet_evidence, images_by_instance, live_on
from tracardi_operator.retention.inventory import InventoryCache

log = logging.getLogger("tracardi_operator")

Model = TypeVar("Model", bound=BaseModel)


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
class _Inputs:
    """A run's inputs from the listings: the policies and the pairs live on the installation's cluster,
    and the others (namespace/name) that share one of its pairs, as last read."""

    listings: Listings
    inst: TracardiInstallation
    identity: str | None
    shared: list[str] = field(default_factory=list)

    def read(self, fresh: bool = False) -> tuple[list[TracardiRetentionPolicy], set[VersionId]]:
        """The policies and the live pairs: derived from the listings once per change of them and shared
        by every pass; `fresh`, from whole reads made now, for this run alone."""
        listings = self.listings
        if fresh:
            policies = _policies([listings.get("policies", fresh=True)])
            fleet = self._fleet([listings.get("installations", fresh=True), listings.get("deployments", fresh=True)])
        else:
            policies = listings.derived("policies", ("policies",), _policies)
            fleet = listings.derived("fleet", ("installations", "deployments"), self._fleet)
        live, found = live_on(self.inst, self.identity, fleet)
        self.shared = sorted(found)
        return policies, live

    def _fleet(self, listed: list[list[dict[str, Any]]]) -> FleetEvidence:
        installations, deployments = listed
        return fleet_evidence(installations, images_by_instance(deployments), parse=self.listings.parsed)


def _policies(listed: list[list[dict[str, Any]]]) -> list[TracardiRetentionPolicy]:
    # An invalid policy governs nothing (its own status says why).
    return validated(TracardiRetentionPolicy, listed[0])


def namespace_labels(listings: Listings) -> dict[str, dict[str, str]]:
    """Every namespace's labels by name, from the listing the namespaces' watch keeps current, derived
    once per change of it."""
    return listings.derived("namespace labels", ("namespaces",), _labels_by_name)


def _labels_by_name(listed: list[list[dict[str, Any]]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for namespace in listed[0]:
        meta = namespace.get("metadata") or {}
        out[str(meta.get("name") or "")] = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    return out


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
        # As the watch keeps them: a run reads them again, whole, before it deletes (`_Effects.recheck`).
        ns_labels = namespace_labels(self.listings).get(inst.namespace, {})
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
