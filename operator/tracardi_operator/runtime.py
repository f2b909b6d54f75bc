"""What the operator runs, built once at start-up and shared by every installation: the scheduler of
the installations' passes, the passes themselves (`reconcile`), the liveness heartbeat of the watch and
the loop that keeps the retention policies' statuses current. kopf's handlers (`handlers`) call in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator import health
from tracardi_operator.applied import StatusWrites
from tracardi_operator.connections import Connections
from tracardi_operator.kube import Kube, deployment_evidence, namespace_evidence, safe_error, without_managed_fields
from tracardi_operator.labels import label_value
from tracardi_operator.listings import Kind, Listings
from tracardi_operator.observe import decision_facts
from tracardi_operator.reconcile import Reconciler
from tracardi_operator.retention_pass import RetentionPass
from tracardi_operator.scheduler import Key, Scheduler, Urgency
from tracardi_operator.settings import Settings

log = logging.getLogger("tracardi_operator")


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    metrics: Any = None
    last_watch_event: float = field(default_factory=time.monotonic)
    delivered: dict[str, health.Delivered] = field(
        default_factory=lambda: {kind: health.Delivered() for kind in ("installations", *health.CHILD_WATCHES)})
    """What the watches of installations, Deployments and Jobs delivered, by kind: the heartbeat holds each
    to a fresh listing."""
    leading: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while this replica may act (it holds the leader Lease, or leader election is off)."""
    _policies_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _policy_generations: dict[str, int | None] = field(default_factory=dict)
    _deployment_facts: dict[Key, dict[str, tuple[object, ...]]] = field(default_factory=dict)
    """What the decisions read of each Deployment (`observe.decision_facts`), as its last event said, by
    the (namespace, instance label) of its installation and then its name: an installation's are
    forgotten with it, even when the watch missed a Deployment's deletion."""

    def __post_init__(self) -> None:
        self.status_writes = StatusWrites()
        self.kube.on_status_written = self.status_writes.record
        self.listings = Listings(self.kube.list_cluster_at)
        self.reconciler = Reconciler(
            self.settings, self.kube, Connections(self.kube),
            RetentionPass(self.kube, self.listings, metrics=self.metrics), metrics=self.metrics,
        )
        self.scheduler = Scheduler(
            work=self.reconciler.reconcile_once,
            default_delay=lambda: self.settings.resync_seconds * random.uniform(0.9, 1.1),
            gate=lambda: self.leading.wait(),  # a standby replica keeps its loops but acts on nothing
            on_retry=self._retry,
            workers=self.settings.workers,
            observe=self._observe,
            executor=ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="reconcile"),
        )

    @property
    def wakeups(self) -> dict[Key, asyncio.Event]:
        """The installations that have a loop, each with the event that wakes it."""
        return self.scheduler.wakeups

    def _observe(self, urgency: Urgency, waited: float, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_pass(urgency.name.lower(), waited, seconds)

    def _retry(self, namespace: str, name: str, failures: int, delay: float, error: Exception) -> None:
        log.warning("reconcile of %s/%s failed (attempt %d, retry in %.0fs): %s",
                    namespace, name, failures, delay, safe_error(error))
        if self.metrics is not None:
            self.metrics.count_reconciliation("retry")

    # -- the installations' loops ------------------------------------------------------------------
    def ensure_loop(self, namespace: str, name: str) -> None:
        """One loop per installation, started on its first event (also the initial listing)."""
        if self.metrics is not None and (namespace, name) not in self.wakeups:
            self.metrics.installation_seen(namespace, name)
        self.scheduler.ensure_loop(namespace, name)

    def wake(self, namespace: str, name: str, urgency: Urgency = Urgency.EVENT) -> None:
        self.scheduler.wake(namespace, name, urgency)

    def changed(self, namespace: str, name: str, resource_version: str | None, listed: bool = False) -> None:
        """An installation's watch event: wake its loop, unless the event only echoes this process's own
        status patch (the pass that wrote it already asked for its next pass: a step's transition asks for
        one at once, an idle installation needs none). Every other change is someone's edit, and its pass
        goes ahead of passes woken by children and the resync; the watch's initial listing (`listed`) is
        not an edit."""
        if not self.status_writes.echo(namespace, name, resource_version):
            self.wake(namespace, name, Urgency.EVENT if listed else Urgency.CHANGE)

    def listed(self, kind: Kind, event: str | None, body: Mapping[str, Any]) -> bool:
        """A watch event of a kind retention lists cluster-wide: keep that listing current with it.
        Whether the listing changed by more than a resourceVersion (never for a listing not read yet)."""
        obj = (deployment_evidence(body) if kind == "deployments" else namespace_evidence(body)
               if kind == "namespaces" else without_managed_fields(body))
        return self.listings.observe(kind, event, obj)

    def child_moved(self, kind: str, namespace: str, name: str, instance: str, deleted: bool = False,
                    resource_version: str | None = None) -> str | None:
        """A watch event of a Deployment or Job (`kind`) of the installation whose instance label is
        `instance`: the next pass of that installation lists that kind again (`children`), and so does
        the pass of the installation whose label the child carried before, when it was relabelled. That
        former instance label, or None; what its Deployment's last event said is forgotten. The state
        the event delivered is what the heartbeat compares that kind's listing with."""
        self.delivered[kind].record((namespace, name), resource_version, deleted, time.monotonic())
        former = self.reconciler.children.moved(kind, namespace, name, instance, gone=deleted)
        if former is not None and kind == "deployments":
            self._facts_forgotten(namespace, former, name)
        return former

    def deployment_facts_changed(self, namespace: str, instance: str, body: Mapping[str, Any],
                                 deleted: bool = False) -> bool:
        """A Deployment's watch event (of the installation whose instance label is `instance`): whether it
        changed anything a decision reads (`decision_facts`); its first event (the initial listing too)
        and its deletion always do."""
        name = str((body.get("metadata") or {}).get("name") or "")
        if deleted:
            self._facts_forgotten(namespace, instance, name)
            return True
        facts = decision_facts(body)
        known_of_owner = self._deployment_facts.setdefault((namespace, instance), {})
        known = known_of_owner.get(name)
        known_of_owner[name] = facts
        return known != facts

    def _facts_forgotten(self, namespace: str, instance: str, name: str) -> None:
        known_of_owner = self._deployment_facts.get((namespace, instance))
        if known_of_owner is not None:
            known_of_owner.pop(name, None)
            if not known_of_owner:
                del self._deployment_facts[(namespace, instance)]

    def wake_labelled(self, namespace: str, instance: str) -> None:
        """Wake the installation whose children carry `instance` as their instance label: its name, or
        for a name longer than a label value allows, the name cut to fit (`labels.label_value`)."""
        if (namespace, instance) in self.wakeups:
            self.wake(namespace, instance)
            return
        for ns, name in list(self.wakeups):
            if ns == namespace and label_value(name) == instance:
                self.wake(ns, name)

    def forget(self, namespace: str, name: str) -> None:
        """The installation was deleted: its loop stops, so its pass will not find it gone and forget what
        the passes kept of it (`Reconciler.reconcile_once`); this does."""
        self.scheduler.forget(namespace, name)
        self.reconciler.forget(namespace, name)
        self._deployment_facts.pop((namespace, label_value(name)), None)
        self.status_writes.forget(namespace, name)

    async def stop_loops(self) -> None:
        await self.scheduler.stop()

    # -- the watch's liveness ----------------------------------------------------------------------
    def touch(self) -> None:
        """Evidence that the installations' watch delivers (an event of it, or the heartbeat finding it
        current): the clock /healthz fails by. Events of the other watches are none: they arrive on
        streams of their own, and would keep the operator alive while that one stays behind."""
        self.last_watch_event = time.monotonic()
        if self.metrics is not None:
            self.metrics.touch()

    def saw(self, namespace: str, name: str, resource_version: str | None, deleted: bool = False) -> None:
        """An installation's watch event: which state of it the watch has delivered, and when."""
        self.delivered["installations"].record((namespace, name), resource_version, deleted, time.monotonic())

    async def heartbeat(self, every: float | None = None, children_every: float | None = None) -> None:
        """Liveness evidence when nothing changes: the API answers and the installations' watch has
        delivered every change a fresh listing shows. A watch that silently stopped delivering stays
        behind, the clock is not touched, and /healthz fails after `watch_stale_seconds`.

        The watches of Deployments and Jobs are held to the same test (`health.WatchCheck`), against
        listings of their metadata every `children_every` seconds (a third of `watch_stale_seconds` by
        default; hundreds of installations have thousands of children): while one of them is stuck, the
        clock is not touched either. A pass that trusts its kept listing of an idle installation's
        children (`children`) would otherwise go on trusting a stream that stopped."""
        every = every or min(60.0, self.settings.watch_stale_seconds / 3)
        intervals = {"installations": every} | dict.fromkeys(
            health.CHILD_WATCHES, children_every or max(every, self.settings.watch_stale_seconds / 3))
        checks = {kind: health.WatchCheck() for kind in intervals}
        stuck: dict[str, set[Key]] = {kind: set() for kind in intervals}
        listed_at = dict.fromkeys(intervals, -math.inf)
        while True:
            await asyncio.sleep(every)
            started = time.monotonic()
            due = [kind for kind, interval in intervals.items() if started - listed_at[kind] >= interval]
            try:
                listed = {kind: await asyncio.to_thread(self._versions, kind) for kind in due}
            except Exception as e:
                log.warning("the Kubernetes API did not answer the heartbeat: %s", safe_error(e))
                continue
            now = time.monotonic()
            for kind, versions in listed.items():
                listed_at[kind] = started
                stuck[kind] = checks[kind].check(versions, self.delivered[kind], now)
            if any(stuck.values()):
                for kind, keys in stuck.items():
                    if keys:
                        names = ", ".join(f"{ns}/{n}" for ns, n in sorted(keys)[:5])
                        log.warning("the watch of %s has not delivered changes of %d of them for %.0fs or more "
                                    "(%s): not alive until it does", kind, len(keys), intervals[kind], names)
                continue
            self.touch()

    def _versions(self, kind: str) -> dict[Key, str]:
        if kind == "installations":
            return self.kube.installation_versions(self.settings.namespaces)
        return self.kube.child_versions(kind, self.settings.namespaces)

    # -- retention policies ------------------------------------------------------------------------
    def policy_seen(self, name: str, generation: int | None, deleted: bool = False) -> bool:
        """A policy's watch event: whether it changed what the policy says (created, deleted, or a new
        generation, which only a spec change makes), rather than only its status."""
        if deleted:
            self._policy_generations.pop(name, None)
            return True
        known = self._policy_generations.get(name)
        self._policy_generations[name] = generation
        return known is None or generation is None or known != generation

    def policies_changed(self) -> None:
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
                await asyncio.to_thread(self.reconciler.policy_statuses)
            except Exception as e:
                log.warning("could not update retention policy statuses: %s", safe_error(e))
