"""The operator's Prometheus metrics, in a registry of their own.

`new_metrics()` builds a fresh `Metrics` (nothing is registered at import time), so each test gets
its own and the operator builds exactly one at start-up. Handlers call the small helpers below; the
health server (`health.py`) exposes `registry` on /metrics and reads `watch_age()` for liveness.

Label values are bounded: results, steps, phases and condition types come from fixed sets, installations
from the cluster (and are forgotten when an installation is deleted).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "tracardi_operator"
RETIRED_MAX = 4096
"""Deleted installations remembered (`Metrics.forget_installation`)."""

ReconcileResult = Literal["ok", "retry", "error"]
"""The `result` label of the reconciliations counter. ok: a pass finished; retry: a pass failed on
something transient (a server that did not answer, a conflict) and is tried again with backoff; error:
permanent (an invalid spec or a refused version), nothing happens until the spec changes."""
MigrationResult = Literal["succeeded", "failed"]

# Upgrade steps take from seconds (a rolling update) to an hour or more (a migration of a large
# installation): buckets from 1 s to 2 h.
PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STEP_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)


@dataclass
class Metrics:
    """Every metric of the operator, registered in `registry`, plus the watch clock behind liveness."""

    registry: CollectorRegistry
    reconciliations: Counter
    pass_duration: Histogram
    pass_wait: Histogram
    upgrade_step_duration: Histogram
    migrations: Counter
    gc_indices_planned: Gauge
    gc_indices_deleted: Counter
    installations_paused: Gauge
    last_watch_event_age: Gauge
    leader: Gauge
    api_requests: Counter
    installation_phase: Gauge
    installation_condition: Gauge
    clock: Callable[[], float] = time.monotonic
    started_at: float = 0.0
    last_watch_event_at: float | None = None
    _paused: set[tuple[str, str]] = field(default_factory=set)
    _phases: dict[tuple[str, str], str] = field(default_factory=dict)
    _conditions: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _retired: dict[tuple[str, str], None] = field(default_factory=dict)
    """Installations deleted, the latest `RETIRED_MAX` in order: a pass that was under way when the
    deletion arrived reports nothing later (it ends within seconds, so a bounded memory is enough)."""
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- the watch clock ------------------------------------------------------------------------
    def touch(self) -> None:
        """Record that a watch event arrived; call it from every event handler."""
        self.last_watch_event_at = self.clock()

    def watch_age(self) -> float | None:
        """Seconds since the last watch event; None when none has arrived since start-up."""
        if self.last_watch_event_at is None:
            return None
        return max(0.0, self.clock() - self.last_watch_event_at)

    def uptime(self) -> float:
        """Seconds since these metrics (and so the operator) started."""
        return max(0.0, self.clock() - self.started_at)

    # -- helpers for handlers ---------------------------------------------------------------------
    def observe_pass(self, urgency: str, waited: float, seconds: float) -> None:
        """One reconcile pass: why it was due (change, event or resync: the scheduler's urgency), how
        long it waited for a worker after it was due or woken, and how long it ran."""
        self.pass_wait.labels(urgency=urgency).observe(max(0.0, waited))
        self.pass_duration.observe(max(0.0, seconds))

    def count_reconciliation(self, result: ReconcileResult) -> None:
        """One reconciliation, by result: ok, retry (transient, tried again) or error (permanent)."""
        self.reconciliations.labels(result=result).inc()

    def observe_step(self, step: str, seconds: float) -> None:
        """Duration of one upgrade step (a status.upgrade.step value such as Migrating)."""
        self.upgrade_step_duration.labels(step=step).observe(seconds)

    @contextmanager
    def time_step(self, step: str) -> Iterator[None]:
        """Time the enclosed block as upgrade step `step`, also when it raises."""
        started = self.clock()
        try:
            yield
        finally:
            self.observe_step(step, self.clock() - started)

    def migrated(self, result: MigrationResult) -> None:
        self.migrations.labels(result=result).inc()

    def gc_planned(self, namespace: str, installation: str, indices: int) -> None:
        """How many indices the installation's current deletion plan would delete."""
        with self._lock:
            if (namespace, installation) not in self._retired:
                self.gc_indices_planned.labels(namespace=namespace, installation=installation).set(indices)

    def gc_deleted(self, namespace: str, installation: str, indices: int) -> None:
        """Indices retention actually deleted (verified gone)."""
        self.gc_indices_deleted.labels(namespace=namespace, installation=installation).inc(indices)

    def set_paused(self, namespace: str, installation: str, paused: bool) -> None:
        """Whether the installation is paused; the gauge counts the paused ones at scrape time."""
        with self._lock:
            if paused and (namespace, installation) not in self._retired:
                self._paused.add((namespace, installation))
            else:
                self._paused.discard((namespace, installation))

    def api_request(self, verb: str, resource: str) -> None:
        self.api_requests.labels(verb=verb, resource=resource).inc()

    def set_leader(self, identity: str, leading: bool) -> None:
        self.leader.labels(identity=identity).set(1 if leading else 0)

    def installation_status(
        self, namespace: str, installation: str, phase: str | None, conditions: Mapping[str, str]
    ) -> None:
        """The phase and conditions an installation's status was written with: one phase series at 1
        (the previous phase's series is dropped), and each condition type at 1 when True, 0 otherwise
        (False or Unknown). `conditions` maps a condition type to its status."""
        key = (namespace, installation)
        with self._lock:
            if key in self._retired:
                return
            previous = self._phases.pop(key, None)
            if previous is not None and previous != phase:
                self.installation_phase.remove(namespace, installation, previous)
            if phase is not None:
                self.installation_phase.labels(namespace=namespace, installation=installation, phase=phase).set(1)
                self._phases[key] = phase
            for gone in self._conditions.get(key, set()) - set(conditions):
                self.installation_condition.remove(namespace, installation, gone)
            for type_, status in conditions.items():
                self.installation_condition.labels(namespace=namespace, installation=installation,
                                                   condition=type_).set(1 if status == "True" else 0)
            self._conditions[key] = set(conditions)

    def forget_installation(self, namespace: str, installation: str) -> None:
        """Drop a deleted installation's series, so that deleted installations do not pile up (nor fire
        alerts): they stay dropped until `installation_seen` tells of one of that name again."""
        key = (namespace, installation)
        with self._lock:
            self._retired[key] = None
            while len(self._retired) > RETIRED_MAX:
                del self._retired[next(iter(self._retired))]
            self._paused.discard(key)
            if (phase := self._phases.pop(key, None)) is not None:
                self.installation_phase.remove(namespace, installation, phase)
            for type_ in self._conditions.pop(key, set()):
                self.installation_condition.remove(namespace, installation, type_)
            self.gc_indices_planned.remove(namespace, installation)  # a no-op for series never set
            self.gc_indices_deleted.remove(namespace, installation)

    def installation_seen(self, namespace: str, installation: str) -> None:
        """An installation exists (again, after one of that name was deleted): its series may be set."""
        with self._lock:
            self._retired.pop((namespace, installation), None)


def new_metrics(clock: Callable[[], float] = time.monotonic) -> Metrics:
    """A fresh registry with every metric; `clock` (monotonic seconds) is injectable for tests."""
    registry = CollectorRegistry(auto_describe=True)
    metrics = Metrics(
        registry=registry,
        reconciliations=Counter(
            f"{PREFIX}_reconciliations",
            "Reconciliations of installations, by result: ok, retry (a transient failure, tried again with backoff) "
            "or error (permanent: an invalid spec or a refused version).",
            ["result"],
            registry=registry,
        ),
        pass_duration=Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "How long one reconcile pass of an installation ran (its reads, writes and retention run).",
            buckets=PASS_BUCKETS,
            registry=registry,
        ),
        pass_wait=Histogram(
            f"{PREFIX}_reconcile_wait_seconds",
            "How long a pass waited for a free worker after it was woken by an event or fell due, by why it was "
            "due: change (the installation was edited, or its step asked for the next pass at once; these go "
            "first), event (a child or policy changed; may wait up to 30 s for change passes) or resync (the "
            "periodic pass, a retry; up to a minute).",
            ["urgency"],
            buckets=PASS_BUCKETS,
            registry=registry,
        ),
        upgrade_step_duration=Histogram(
            f"{PREFIX}_upgrade_step_duration_seconds",
            "Duration of upgrade steps (Installing, Migrating, Verifying, Switching, Rolling, ...).",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=registry,
        ),
        migrations=Counter(
            f"{PREFIX}_migrations",
            "Migration Jobs finished, by result (succeeded, failed).",
            ["result"],
            registry=registry,
        ),
        gc_indices_planned=Gauge(
            f"{PREFIX}_gc_indices_planned",
            "Indices the current retention plan of an installation would delete.",
            ["namespace", "installation"],
            registry=registry,
        ),
        gc_indices_deleted=Counter(
            f"{PREFIX}_gc_indices_deleted",
            "Indices deleted by retention.",
            ["namespace", "installation"],
            registry=registry,
        ),
        installations_paused=Gauge(
            f"{PREFIX}_installations_paused",
            "Installations with spec.paused set.",
            registry=registry,
        ),
        last_watch_event_age=Gauge(
            f"{PREFIX}_last_watch_event_age_seconds",
            "Seconds since the last watch event (since start-up while none arrived).",
            registry=registry,
        ),
        api_requests=Counter(
            f"{PREFIX}_api_requests",
            "Kubernetes API requests the operator's own client sent (kopf's watches not included).",
            ["verb", "resource"],
            registry=registry,
        ),
        installation_phase=Gauge(
            f"{PREFIX}_installation_phase",
            "1 for the phase an installation's status shows (Pending, Progressing, Ready, Degraded, Blocked, Paused).",
            ["namespace", "installation", "phase"],
            registry=registry,
        ),
        installation_condition=Gauge(
            f"{PREFIX}_installation_condition",
            "Conditions of an installation's status, by type: 1 while True, 0 while False or Unknown.",
            ["namespace", "installation", "condition"],
            registry=registry,
        ),
        leader=Gauge(
            f"{PREFIX}_leader",
            "1 while this replica holds the leader Lease and reconciles, 0 while it stands by.",
            ["identity"],
            registry=registry,
        ),
        clock=clock,
        started_at=clock(),
    )
    metrics.installations_paused.set_function(lambda: len(metrics._paused))
    # Computed at scrape time: with no event yet, the age of the process, so that a watch stream that
    # never delivered anything still shows a growing age.
    metrics.last_watch_event_age.set_function(lambda: metrics.uptime() if (age := metrics.watch_age()) is None else age)
    return metrics
