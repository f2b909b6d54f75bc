"""One reconcile pass of one installation, and the loop that repeats it when something changes.

A pass reads the installation and its children, asks `rollout.decide` what to do, records the new
status first, then applies, creates and deletes, then posts Events. The loop sleeps until a watch
event wakes it (the installation or one of its Jobs or Deployments changed) or until its next check
is due; there is no polling loop per installation beyond that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from tracardi_operator import builders, conditions, health
from tracardi_operator.elastic import ElasticAdapter, build_client
from tracardi_operator.indices import VersionId
from tracardi_operator.kube import Kube
from tracardi_operator.labels import ANNOTATION_RETRY, label_value
from tracardi_operator.models import RetentionStatus, TracardiInstallation, TracardiRetentionPolicy
from tracardi_operator.observe import Observed, observe
from tracardi_operator.retention import execution, headroom
from tracardi_operator.retention import status as retention_status
from tracardi_operator.retention.evidence import cluster_key, cluster_live, images_by_instance
from tracardi_operator.retention.inventory import InventoryCache, connection_of
from tracardi_operator.retention.selection import governed_by
from tracardi_operator.rollout import Decision, RolloutContext, decide
from tracardi_operator.settings import Settings

log = logging.getLogger("tracardi_operator")

Key = tuple[str, str]  # namespace, name
GONE = -1.0
"""What a pass returns when the installation is gone or being deleted: its loop ends."""


@dataclass
class Runtime:
    """Everything a pass needs, built once at start-up and shared by every installation."""

    settings: Settings
    kube: Kube
    metrics: Any = None
    wakeups: dict[Key, asyncio.Event] = field(default_factory=dict)
    last_watch_event: float = field(default_factory=time.monotonic)
    watched: dict[Key, str] = field(default_factory=dict)
    """The resourceVersion of each installation the watch delivered last."""
    watched_at: dict[Key, float] = field(default_factory=dict)
    """When the watch last delivered an event of each installation."""
    inventories: InventoryCache = field(default_factory=InventoryCache)
    _adapters: dict[tuple[Any, ...], ElasticAdapter] = field(default_factory=dict)
    _loops: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    _policies_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _listings: dict[str, tuple[float, list[dict[str, Any]]]] = field(default_factory=dict)
    leading: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while this replica may act (it holds the leader Lease, or leader election is off)."""

    def wake(self, namespace: str, name: str) -> None:
        event = self.wakeups.get((namespace, name))
        if event is not None:
            event.set()

    def wake_labelled(self, namespace: str, instance: str) -> None:
        """Wake the installation whose children carry `instance` as their instance label: its name, or
        for a name longer than a label value allows, the name cut to fit (`labels.label_value`)."""
        if (namespace, instance) in self.wakeups:
            self.wake(namespace, instance)
            return
        for ns, name in list(self.wakeups):
            if ns == namespace and label_value(name) == instance:
                self.wake(ns, name)

    def touch(self) -> None:
        self.last_watch_event = time.monotonic()
        if self.metrics is not None:
            self.metrics.touch()

    def saw(self, namespace: str, name: str, resource_version: str | None, deleted: bool = False) -> None:
        """An installation's watch event: which state of it the watch has delivered, and when."""
        key = (namespace, name)
        if deleted:
            self.watched.pop(key, None)
        elif resource_version:
            self.watched[key] = resource_version
        self.watched_at[key] = time.monotonic()

    async def heartbeat(self, every: float | None = None) -> None:
        """Liveness evidence when nothing changes: the API answers and the installations' watch has
        delivered every change a fresh listing shows. A watch that silently stopped delivering stays
        behind, the clock is not touched, and /healthz fails after `watch_stale_seconds`."""
        every = every or min(60.0, self.settings.watch_stale_seconds / 3)
        lagging_since: dict[Key, float] = {}
        while True:
            await asyncio.sleep(every)
            try:
                listed = await asyncio.to_thread(self.kube.installation_versions, self.settings.namespaces)
            except Exception as e:
                log.warning("the Kubernetes API did not answer the heartbeat: %s", _safe(e))
                continue
            now = time.monotonic()
            lagging = health.watch_lagging(listed, self.watched)
            stuck = health.watch_stuck(lagging_since, lagging, self.watched_at)
            lagging_since = {k: lagging_since.get(k, now) for k in lagging}
            if stuck:
                names = ", ".join(f"{ns}/{n}" for ns, n in sorted(stuck)[:5])
                log.warning("the installations' watch has not delivered changes of %d installation(s) for %.0fs "
                            "or more (%s): not alive until it does", len(stuck), every, names)
                continue
            self.touch()

    def ensure_loop(self, namespace: str, name: str) -> None:
        """One loop per installation, started on its first event (also the initial listing)."""
        key = (namespace, name)
        task = self._loops.get(key)
        if task is None or task.done():
            self._loops[key] = asyncio.get_running_loop().create_task(self.installation_loop(namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        task = self._loops.pop((namespace, name), None)
        if task is not None:
            task.cancel()
        if self.metrics is not None:
            self.metrics.forget_installation(namespace, name)

    async def stop_loops(self) -> None:
        tasks = list(self._loops.values())
        self._loops.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def policies_changed(self) -> None:
        self._listings.pop("policies", None)  # the next pass reads the policies as they are now
        self._policies_changed.set()

    async def policy_statuses(self, every: float = 60.0) -> None:
        """Keep every policy's list of governed installations current: on policy events, and on a
        timer because labels of installations and namespaces change the selection too."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._policies_changed.wait(), timeout=every)
            self._policies_changed.clear()
            await self.leading.wait()
            try:
                for raw in await asyncio.to_thread(self.kube.list_cluster, "policies"):
                    meta = raw.get("metadata", {})
                    await asyncio.to_thread(self.policy_status, meta.get("name", ""), meta.get("generation"))
            except Exception as e:
                log.warning("could not update retention policy statuses: %s", _safe(e))

    # -- the loop ---------------------------------------------------------------------------------
    async def installation_loop(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        wake = self.wakeups.setdefault(key, asyncio.Event())
        failures = 0
        try:
            while True:
                await self.leading.wait()  # a standby replica keeps its loops but acts on nothing
                wake.clear()
                try:
                    delay = await asyncio.to_thread(self.reconcile_once, namespace, name)
                    if delay == GONE:
                        return
                    failures = 0
                except Exception as e:
                    failures += 1
                    delay = min(300.0, 2.0 ** min(failures, 8))
                    log.warning("reconcile of %s/%s failed (attempt %d, retry in %.0fs): %s",
                                namespace, name, failures, delay, _safe(e))
                    self._count("error")
                if delay is None:
                    delay = self.settings.resync_seconds * random.uniform(0.9, 1.1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)
        finally:
            self.wakeups.pop(key, None)
            if self._loops.get(key) is asyncio.current_task():
                self._loops.pop(key, None)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.reconciled(result)

    # -- one pass ---------------------------------------------------------------------------------
    def reconcile_once(self, namespace: str, name: str) -> float | None:
        body = self.kube.get_installation(namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return GONE
        try:
            inst = TracardiInstallation.model_validate(body)
        except ValidationError as e:
            self._invalid(body, e)
            return None
        observed = self._with_refusals(namespace, observe(self.kube.list_children(namespace, name)))
        adapter = self._adapter(inst)
        shards_available = self._shards_available(inst, adapter)
        ctx = RolloutContext(
            now=dt.datetime.now(dt.UTC).replace(microsecond=0),
            builder=builders.BuilderSettings(
                job_image=self.settings.job_image,
                job_active_deadline_seconds=self.settings.job_deadline_seconds,
                flattened_check=self.settings.flattened_check,
            ),
            api_addressing=self.settings.api_addressing,
            retry=(inst.metadata.annotations or {}).get(ANNOTATION_RETRY),
            shards_available=shards_available,
        )
        decision = decide(inst, observed, ctx)
        self._carry_out(inst, body, decision)
        self._count("success")
        idle = decision.status.upgrade is None or decision.status.upgrade.step == "Completed"
        if idle and decision.requeue_after is None and not inst.spec.paused and adapter is not None:
            inst.status = decision.status
            self._retention(inst, body, adapter, ctx.now)
        return decision.requeue_after

    def _with_refusals(self, namespace: str, observed: Observed) -> Observed:
        """A running Job without pods may be one whose pods the apiserver refuses: only its Events say
        why (Deployments say it in their ReplicaFailure condition)."""
        jobs = dict(observed.jobs)
        for name, job in observed.jobs.items():
            if job.phase == "Running" and job.pods == 0:
                jobs[name] = dataclasses.replace(job, refused=self.kube.failed_create(namespace, name))
        return dataclasses.replace(observed, jobs=jobs)

    def policy_status(self, name: str, generation: int | None) -> None:
        """Which installations a policy governs, for `kubectl get trp -o yaml`."""
        from tracardi_operator.models import Condition, GovernedInstallation, TracardiRetentionPolicyStatus

        policies = _validated(TracardiRetentionPolicy, self.kube.list_cluster("policies"))
        installations = _validated(TracardiInstallation, self.kube.list_cluster("installations"))
        labels = {ns: self.kube.namespace_labels(ns) for ns in {i.namespace for i in installations}}
        governed = governed_by(name, policies, installations, labels)
        mine = next((p for p in policies if p.metadata.name == name), None)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        current = mine.status.conditions if mine else []
        conds: list[Condition] = conditions.set_condition(
            current, conditions.POLICY_VALID, True, "Valid", f"governs {len(governed)} installations",
            now=now, observed_generation=generation,
        )
        status = TracardiRetentionPolicyStatus(
            observed_generation=generation,
            governed=[GovernedInstallation(namespace=ns, name=n) for ns, n in governed], conditions=conds,
        )
        new = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        old = mine.status.model_dump(by_alias=True, mode="json", exclude_none=True) if mine else {}
        if new != old:
            self.kube.patch_policy_status(name, new)

    # -- Elasticsearch and retention ----------------------------------------------------------------
    def _adapter(self, inst: TracardiInstallation) -> ElasticAdapter | None:
        """One client per installation's Elasticsearch settings; None while its Secret is missing."""
        es = inst.spec.elasticsearch
        secret: dict[str, str] = {}
        if es.credentials_secret_ref is not None:
            found = self.kube.read_secret(inst.namespace, es.credentials_secret_ref.name) or {}
            # One read of the Secret per pass, not one per key.
            secret = {k: found[k] for k in ("username", "password", "apiKeyId", "apiKey") if k in found}
        ca_file = None
        if es.ca_secret_ref is not None:
            ca_file = self.kube.secret_to_file(inst.namespace, es.ca_secret_ref.name, es.ca_secret_ref.key)
        key = (inst.namespace, inst.name, tuple(es.hosts), es.verify_certs, ca_file, tuple(sorted(secret.items())))
        adapter = self._adapters.get(key)
        if adapter is None:
            for old in [k for k in self._adapters if k[:2] == key[:2]]:
                self._adapters.pop(old)
            adapter = ElasticAdapter(build_client(connection_of(inst, secret, ca_file)))
            self._adapters[key] = adapter
        return adapter

    def _shards_available(self, inst: TracardiInstallation, adapter: ElasticAdapter | None) -> int | None:
        """Room for new shards, read only when a version change is about to start."""
        up = inst.status.upgrade
        if adapter is None or inst.status.current_version == inst.spec.version or (up and up.step != "Completed"):
            return None
        try:
            cached = self.inventories.get(cluster_key(inst), adapter)
        except Exception as e:
            log.warning("could not read the index inventory of %s/%s: %s", inst.namespace, inst.name, _safe(e))
            return None
        return headroom.available(cached.raw.max_shards_per_node, cached.raw.data_nodes,
                                  cached.inventory.shards_in_use)

    def _listing(self, kind: str, ttl: float = 10.0, fresh: bool = False) -> list[dict[str, Any]]:
        """A cluster-wide listing shared by the passes of `ttl` seconds; `fresh` reads it again."""
        at, items = self._listings.get(kind, (0.0, []))
        if fresh or time.monotonic() - at > ttl:
            items = self.kube.list_cluster(kind)
            self._listings[kind] = (time.monotonic(), items)
        return items

    def _retention(self, inst: TracardiInstallation, body: dict[str, Any], adapter: ElasticAdapter,
                   now: dt.datetime) -> None:
        key = cluster_key(inst)
        try:
            identity = self.inventories.get(key, adapter).raw.cluster_uuid
        except Exception as e:
            log.warning("could not read the index inventory of %s/%s: %s", inst.namespace, inst.name, _safe(e))
            self._elasticsearch_unreadable(inst, body, e, now)
            return
        shared: set[str] = set()

        def inputs(fresh: bool = False) -> tuple[list[TracardiRetentionPolicy], set[VersionId]]:
            # An invalid policy governs nothing (its own status says why).
            policies = _validated(TracardiRetentionPolicy, self._listing("policies", fresh=fresh))
            images = images_by_instance(self._listing("deployments", fresh=fresh))
            live, found = cluster_live(inst, identity, self._listing("installations", fresh=fresh), images)
            shared.clear()
            shared.update(found)
            return policies, live

        policies, live = inputs()
        ns_labels = self.kube.namespace_labels(inst.namespace)
        old_retention = (body.get("status") or {}).get("retention") or {}

        effects = _RetentionEffects(self, inst, old_retention, inputs)
        try:
            outcome = execution.run(inst, adapter, self.inventories, policies, ns_labels, live, now, effects)
        except Exception as e:
            log.warning("retention of %s/%s failed, next try on the next cycle: %s", inst.namespace, inst.name,
                        _safe(e))
            return
        change = retention_status.after_run(inst.status, body.get("status") or {}, outcome, identity=identity,
                                            shared=sorted(shared), now=now, generation=inst.metadata.generation)
        if change.patch:
            self.kube.patch_status(inst.namespace, inst.name, change.patch)
        for type_, reason, message in change.events:
            self.kube.event(body, type_, reason, message)
        if self.metrics is not None and outcome.deleted_indices:
            self.metrics.gc_deleted(inst.namespace, inst.name, outcome.deleted_indices)

    def _elasticsearch_unreadable(self, inst: TracardiInstallation, body: dict[str, Any], error: Exception,
                                  now: dt.datetime) -> None:
        """Retention could not read Elasticsearch: ClusterIdentified=False says so (nothing is deleted
        while it is), written once, not on every pass; the next pass that reads it sets it True again."""
        change = retention_status.unreadable(inst.status.conditions, body.get("status") or {},
                                             type(error).__name__, now=now, generation=inst.metadata.generation)
        if change.patch:
            self.kube.patch_status(inst.namespace, inst.name, change.patch)

    def _carry_out(self, inst: TracardiInstallation, body: dict[str, Any], decision: Decision) -> None:
        ns, name = inst.namespace, inst.name
        new_status = decision.status.model_dump(by_alias=True, mode="json", exclude_none=True)
        old_status = body.get("status") or {}
        if new_status != old_status:
            # Record first: a step's outcome is in status before anything else moves.
            patch = {k: None for k in old_status if k not in new_status}
            patch.update(new_status)
            self.kube.patch_status(ns, name, patch)
        for manifest in decision.apply:
            self.kube.apply(manifest)
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
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        status = body.get("status") or {}
        from tracardi_operator.models import Condition

        current = [Condition.model_validate(c) for c in status.get("conditions", []) or []]
        was = conditions.find(current, conditions.SPEC_ACCEPTED)
        updated = conditions.set_condition(
            current, conditions.SPEC_ACCEPTED, False, "InvalidSpec", message,
            now=now, observed_generation=meta.get("generation"),
        )
        self.kube.patch_status(meta.get("namespace", ""), meta.get("name", ""), {
            "conditions": [c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in updated],
            "phase": conditions.summarize_phase(updated),
            "observedGeneration": meta.get("generation"),
        })
        if was is None or was.reason != "InvalidSpec" or was.message != message:
            self.kube.event(body, "Warning", "InvalidSpec", message)


def _validated(model: Any, items: list[dict[str, Any]]) -> list[Any]:
    out = []
    for raw in items:
        try:
            out.append(model.model_validate(raw))
        except ValidationError:
            continue
    return out


def _extra(inst: TracardiInstallation, decision: Decision) -> dict[str, Any]:
    up = decision.status.upgrade
    return {
        "installation": f"{inst.namespace}/{inst.name}",
        "version": decision.status.current_version,
        "step": up.step if up else None,
    }


def _safe(error: BaseException) -> str:
    """An error for the log: API errors by status and reason only (their bodies can echo objects)."""
    if isinstance(error, ApiException):
        return f"Kubernetes API {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"[:500]


@dataclass(frozen=True)
class _RetentionEffects:
    """What a retention run asks of the pass: status written before anything goes, inputs read again."""

    runtime: Runtime
    inst: TracardiInstallation
    old_retention: dict[str, Any]
    inputs: Any

    def publish(self, plan: RetentionStatus) -> None:
        patch = {"retention": retention_status.retention_patch(self.old_retention, plan)}
        self.runtime.kube.patch_status(self.inst.namespace, self.inst.name, patch)

    def recheck(self) -> execution.Fresh:
        kube, inst = self.runtime.kube, self.inst
        fresh_policies, fresh_live = self.inputs(fresh=True)
        raw = kube.get_installation(inst.namespace, inst.name)
        current = None
        if raw is not None and not raw.get("metadata", {}).get("deletionTimestamp"):
            with contextlib.suppress(ValidationError):
                current = TracardiInstallation.model_validate(raw)
        return execution.Fresh(fresh_policies, fresh_live, current, kube.namespace_labels(inst.namespace))

    def record_deleting(self, names: execution.Names) -> None:
        """Deleting, with the names about to go, recorded before they go (a failed patch stops the run)."""
        kube, inst = self.runtime.kube, self.inst
        raw = kube.get_installation(inst.namespace, inst.name) or {}
        records = retention_status.mark_deleting((raw.get("status") or {}).get("versions") or [], names)
        kube.patch_status(inst.namespace, inst.name, {"versions": records})
