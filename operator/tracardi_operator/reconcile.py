"""One reconcile pass of one installation: read, decide, write status, act.

A pass reads the installation and its children, asks `rollout.decide` what to do, records the new
status first, then applies, creates and deletes, then posts Events; an idle installation's pass then
runs retention (`retention_pass`). When passes run is the scheduler's business (`scheduler`), the
Elasticsearch clients are `connections`', and `runtime` wires them together.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tracardi_operator import builders, conditions
from tracardi_operator.applied import AppliedCache, Child, live_children, stamped
from tracardi_operator.children import ChildListings
from tracardi_operator.connections import Connections
from tracardi_operator.elastic import ElasticAdapter
from tracardi_operator.kube import Kube, safe_error
from tracardi_operator.labels import ANNOTATION_RETRY
from tracardi_operator.models import (
    Condition,
    GovernedInstallation,
    TracardiInstallation,
    TracardiRetentionPolicy,
    TracardiRetentionPolicyStatus,
)
from tracardi_operator.observe import Observed, observe
from tracardi_operator.progress import StepClock, finished_migrations
from tracardi_operator.reasons import Reason
from tracardi_operator.retention import headroom
from tracardi_operator.retention.selection import governed_by
from tracardi_operator.retention_pass import RetentionPass, namespace_labels, validated
from tracardi_operator.rollout import Decision, RolloutContext, decide, needs_shard_room
from tracardi_operator.scheduler import GONE
from tracardi_operator.settings import Settings

log = logging.getLogger("tracardi_operator")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Reconciler:
    """The passes of every installation, with what they share: settings, clients and caches."""

    settings: Settings
    kube: Kube
    connections: Connections
    retention: RetentionPass
    metrics: Any = None
    applied: AppliedCache = dataclasses.field(default_factory=AppliedCache)
    steps: StepClock = dataclasses.field(default_factory=StepClock)
    children: ChildListings = dataclasses.field(default_factory=ChildListings)

    def forget(self, namespace: str, name: str) -> None:
        """The installation is gone: drop what the passes kept of it (its apply records, its step clock,
        its metrics) and close its Elasticsearch connection unless another installation uses it."""
        self.applied.forget((namespace, name))
        self.steps.forget((namespace, name))
        self.children.forget(namespace, name)
        self.connections.forget(namespace, name)
        if self.metrics is not None:
            self.metrics.forget_installation(namespace, name)

    def reconcile_once(self, namespace: str, name: str) -> float | None:
        """One pass; the seconds until the next is due (None: the resync period), or GONE."""
        body = self.kube.get_installation(namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            self.forget(namespace, name)  # also when its deletion's watch event was missed
            return GONE
        try:
            inst = TracardiInstallation.model_validate(body)
        except ValidationError as e:
            self._invalid(body, e)
            self._count("error")
            return None
        idle = inst.status.current_version == inst.spec.version and (
            inst.status.upgrade is None or inst.status.upgrade.step == "Completed")
        children = self.children.list(namespace, name, idle,
                                      lambda kinds: self.kube.list_children(namespace, name, kinds))
        observed = self._with_refusals(namespace, observe(children))
        adapter = self.connections.adapter(inst)
        ctx = self._context(inst, self._shards_available(inst, adapter))
        decision = decide(inst, observed, ctx)
        self._carry_out(inst, body, decision, live_children(children))
        self._report(inst, decision)
        refused = conditions.status_of(decision.status.conditions, conditions.SPEC_ACCEPTED) == "False"
        self._count("error" if refused else "ok")
        idle = decision.status.upgrade is None or decision.status.upgrade.step == "Completed"
        if idle and decision.requeue_after is None and not inst.spec.paused and adapter is not None:
            inst.status = decision.status
            self.retention.run(inst, body, adapter, ctx.now)
        return decision.requeue_after

    def _report(self, inst: TracardiInstallation, decision: Decision) -> None:
        """The metrics of what this pass wrote: phase and conditions, paused, the step that ended, the
        migrations that finished (`progress`)."""
        if self.metrics is None:
            return
        ns, name, status = inst.namespace, inst.name, decision.status
        self._report_status(ns, name, status.phase, status.conditions)
        self.metrics.set_paused(ns, name, inst.spec.paused)
        ended = self.steps.seen((ns, name), status)
        if ended is not None:
            self.metrics.observe_step(*ended)
        for result in finished_migrations(inst.status, status):
            self.metrics.migrated(result)

    def _report_status(self, namespace: str, name: str, phase: str | None, conds: list[Condition]) -> None:
        if self.metrics is not None:
            self.metrics.installation_status(namespace, name, phase, {c.type: c.status for c in conds})

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.count_reconciliation(result)

    def _context(self, inst: TracardiInstallation, shards_available: int | None) -> RolloutContext:
        return RolloutContext(
            now=_now(),
            builder=builders.BuilderSettings(
                job_image=self.settings.job_image,
                job_active_deadline_seconds=self.settings.job_deadline_seconds,
                flattened_check=self.settings.flattened_check,
            ),
            api_addressing=self.settings.api_addressing,
            retry=(inst.metadata.annotations or {}).get(ANNOTATION_RETRY),
            shards_available=shards_available,
        )

    def _with_refusals(self, namespace: str, observed: Observed) -> Observed:
        """A running Job without pods may be one whose pods the apiserver refuses: only its Events say
        why (Deployments say it in their ReplicaFailure condition)."""
        jobs = dict(observed.jobs)
        for name, job in observed.jobs.items():
            if job.phase == "Running" and job.pods == 0:
                jobs[name] = dataclasses.replace(job, refused=self.kube.failed_create(namespace, name))
        return dataclasses.replace(observed, jobs=jobs)

    def _shards_available(self, inst: TracardiInstallation, adapter: ElasticAdapter | None) -> int | None:
        """Room for new shards, read only when a version change that makes new indices is about to
        start: the limit and the cluster's shard count (two small requests, no index listing)."""
        up = inst.status.upgrade
        if adapter is None or inst.status.current_version == inst.spec.version or (up and up.step != "Completed"):
            return None
        if not needs_shard_room(inst):
            return None
        try:
            room = adapter.shard_room()
        except Exception as e:
            log.warning("could not read the shard room of %s/%s: %s", inst.namespace, inst.name, safe_error(e))
            return None
        return headroom.available(room.max_shards_per_node, room.data_nodes, room.shards_in_use)

    def _carry_out(self, inst: TracardiInstallation, body: dict[str, Any], decision: Decision,
                   live: Mapping[Child, Mapping[str, Any]]) -> None:
        ns, name = inst.namespace, inst.name
        new_status = decision.status.model_dump(by_alias=True, mode="json", exclude_none=True)
        old_status = body.get("status") or {}
        if new_status != old_status:
            # Record first: a step's outcome is in status before anything else moves.
            patch = {k: None for k in old_status if k not in new_status}
            patch.update(new_status)
            self.kube.patch_status(ns, name, patch)
        # An apply that would change nothing is skipped (`applied`): the same manifest, to an object
        # nobody changed since it was applied (by this process, or, after a restart, by any).
        applies = [m for m in decision.apply if self.applied.needed((ns, name), m, live)]
        if applies or decision.create or decision.delete:
            self.children.wrote(ns, name)  # before the first write: a failed pass lists them again too
        for manifest in applies:
            self.applied.record((ns, name), manifest, self.kube.apply(stamped(manifest)))
        for manifest in decision.create:
            if self.kube.create_once(manifest):
                log.info("created %s %s/%s", manifest["kind"], ns, manifest["metadata"]["name"],
                         extra=_extra(inst, decision))
        for api_version, kind, child in decision.delete:
            self.kube.delete(api_version, kind, ns, child)
        for event in decision.events:
            log.info("%s: %s", event.reason, event.message, extra=_extra(inst, decision))
            self.kube.event(body, event.type, event.reason, event.message)

    def _invalid(self, body: dict[str, Any], error: ValidationError) -> None:
        """A spec admission let through but the model refuses: say so, change nothing else."""
        meta = body.get("metadata", {})
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in error.errors()[:5]
        )
        message = f"the spec is invalid, nothing changes until it is fixed: {problems}"
        status = body.get("status") or {}
        current = [Condition.model_validate(c) for c in status.get("conditions", []) or []]
        was = conditions.find(current, conditions.SPEC_ACCEPTED)
        updated = conditions.set_condition(
            current, conditions.SPEC_ACCEPTED, False, Reason.INVALID_SPEC, message,
            now=_now(), observed_generation=meta.get("generation"),
        )
        self.kube.patch_status(meta.get("namespace", ""), meta.get("name", ""), {
            "conditions": [c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in updated],
            "phase": conditions.summarize_phase(updated),
            "observedGeneration": meta.get("generation"),
        })
        self._report_status(meta.get("namespace", ""), meta.get("name", ""), conditions.summarize_phase(updated),
                            updated)
        if was is None or was.reason != Reason.INVALID_SPEC or was.message != message:
            self.kube.event(body, "Warning", Reason.INVALID_SPEC, message)

    def policy_statuses(self) -> None:
        """Which installations each policy governs, for `kubectl get trp -o yaml`: the policies and the
        installations and the namespaces' labels as the watches keep them (`listings`)."""
        listings = self.retention.listings
        raw_policies = listings.get("policies")
        policies = validated(TracardiRetentionPolicy, raw_policies)
        installations = listings.valid_installations()
        labels = namespace_labels(listings)
        for raw in raw_policies:
            meta = raw.get("metadata", {})
            self._policy_status(meta.get("name", ""), meta.get("generation"), policies, installations, labels)

    def _policy_status(self, name: str, generation: int | None, policies: list[TracardiRetentionPolicy],
                       installations: list[TracardiInstallation], labels: dict[str, dict[str, str]]) -> None:
        governed = governed_by(name, policies, installations, labels)
        mine = next((p for p in policies if p.metadata.name == name), None)
        current = mine.status.conditions if mine else []
        conds: list[Condition] = conditions.set_condition(
            current, conditions.POLICY_VALID, True, Reason.VALID, f"governs {len(governed)} installations",
            now=_now(), observed_generation=generation,
        )
        status = TracardiRetentionPolicyStatus(
            observed_generation=generation,
            governed=[GovernedInstallation(namespace=ns, name=n) for ns, n in governed], conditions=conds,
        )
        new = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        old = mine.status.model_dump(by_alias=True, mode="json", exclude_none=True) if mine else {}
        if new != old:
            self.kube.patch_policy_status(name, new)


def _extra(inst: TracardiInstallation, decision: Decision) -> dict[str, Any]:
    up = decision.status.upgrade
    return {
        "installation": f"{inst.namespace}/{inst.name}",
        "version": decision.status.current_version,
        "step": up.step if up else None,
    }
