"""Leader election on a coordination.k8s.io/v1 Lease: of all replicas, only the holder reconciles.

What lives here: `next_lease`, the pure rule (take a free or expired Lease, renew our own, leave a
valid foreign one alone), and `Elector`, which applies it every `retry` seconds with optimistic
concurrency (a replace carries the resourceVersion it read, so two candidates never both win), sets
`leading` while it holds the Lease, calls `on_lost` when it could not renew within `renew_deadline`,
and releases the Lease on a clean shutdown so that a standby takes over within one `retry`.

The timings are those of controller-runtime's defaults: a holder that stops renewing (a crash, a
partition) is replaced `duration` + `retry` seconds after its last renewal at the latest; a holder
that cannot renew for `renew_deadline` (< `duration`) stops acting before anyone else may start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tracardi_operator.kubeclient import ApiError, KubeClient

log = logging.getLogger("tracardi_operator.leader")

LEASE_NAME = "tracardi-operator"


@dataclass(frozen=True)
class Timings:
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0


@dataclass(frozen=True)
class LeaseRecord:
    holder: str | None
    acquired_at: dt.datetime | None
    renewed_at: dt.datetime | None
    duration_seconds: int
    transitions: int = 0
    resource_version: str | None = None


def next_lease(current: LeaseRecord | None, me: str, now: dt.datetime, timings: Timings) -> LeaseRecord | None:
    """The Lease to write to hold it now, or None while another holder's Lease is valid."""
    duration = int(timings.duration)
    if current is None:
        return LeaseRecord(me, now, now, duration, 0)
    if current.holder == me:
        return replace(current, renewed_at=now, duration_seconds=duration,
                       acquired_at=current.acquired_at or now)
    free = not current.holder
    expired = current.renewed_at is None or now >= current.renewed_at + dt.timedelta(
        seconds=current.duration_seconds)
    if not (free or expired):
        return None
    return replace(current, holder=me, acquired_at=now, renewed_at=now, duration_seconds=duration,
                   transitions=current.transitions + 1)


def released(current: LeaseRecord) -> LeaseRecord:
    """Our Lease handed back: no holder, so the next candidate takes it at once."""
    return replace(current, holder=None, duration_seconds=1)


def _micro_time(value: Any) -> dt.datetime | None:
    """A Lease's MicroTime ("2026-12-07T20:50:00.123456Z"), or None when it has none."""
    return dt.datetime.fromisoformat(str(value)) if value else None


def _record(lease: dict[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        acquired_at=_micro_time(spec.get("acquireTime")),
        renewed_at=_micro_time(spec.get("renewTime")),
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


def _stamp(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def _body(name: str, namespace: str, record: LeaseRecord) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    spec = {"holderIdentity": record.holder or "", "acquireTime": _stamp(record.acquired_at),
            "renewTime": _stamp(record.renewed_at), "leaseDurationSeconds": record.duration_seconds,
            "leaseTransitions": record.transitions}
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": {k: v for k, v in spec.items() if v is not None}}


_TIMEOUT = (3.0, 3.0)
"""(connect, read) seconds of a Lease request, tried once: a renewal must fail within `renew_deadline`
(and `run` gives up waiting for one at that deadline whatever the requests do)."""


def _now() -> dt.datetime:
    # MicroTime: the API keeps microseconds.
    return dt.datetime.now(dt.UTC)


@dataclass
class Elector:
    """Acquires and renews the operator's Lease for one process (`run`), and hands it back once on a
    clean shutdown (`release`). An Elector is used once: after `release` it never holds the Lease again
    (a renewal still running writes nothing), so a process that wants to lead again makes a new one.
    """

    api: KubeClient
    namespace: str
    identity: str
    on_lost: Callable[[], None]
    timings: Timings = Timings()
    name: str = LEASE_NAME
    on_change: Callable[[bool], None] | None = None

    def __post_init__(self) -> None:
        self.leading = asyncio.Event()
        self._last_renewal = 0.0
        # Set by `release`: a renewal already running in its thread (a cancelled `run` does not stop
        # it) must not take the Lease back after it was handed over.
        self._stopping = False

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def read(self) -> dict[str, Any] | None:
        """The Lease as stored; None when there is none."""
        try:
            return dict(self.api.request("GET", f"{self.path}/{self.name}", timeout=_TIMEOUT, retries=0))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def _write(self, record: LeaseRecord, create: bool) -> None:
        body = _body(self.name, self.namespace, record)
        if create:
            self.api.request("POST", self.path, body=body, timeout=_TIMEOUT, retries=0)
        else:  # a replace carrying the resourceVersion read: 409 when someone wrote in between
            self.api.request("PUT", f"{self.path}/{self.name}", body=body, timeout=_TIMEOUT, retries=0)

    def try_hold(self) -> float | None:
        """One attempt to acquire or renew. When we hold the Lease afterwards: the monotonic time at which
        its renewTime was stamped (before the write, which may take seconds: the others count the Lease's
        duration from that stamp, so our deadline must too); None otherwise."""
        lease = self.read()
        current = _record(lease) if lease is not None else None
        stamped = time.monotonic()
        wanted = next_lease(current, self.identity, _now(), self.timings)
        if wanted is None or self._stopping:
            return None
        try:
            self._write(wanted, create=lease is None)
        except ApiError as e:
            if e.status in (409, 422):  # another candidate wrote first: it won this round
                return None
            raise
        return stamped

    async def run(self) -> None:
        """Hold the Lease for as long as this process lives; `on_lost` when renewal fails too long."""
        while True:
            # While leading, a renewal is waited for only until the deadline: an attempt still hanging then
            # (the apiserver slow to answer) counts as failed, and this process stops acting before another
            # may take the Lease. The attempt's thread runs on, but nothing it writes makes us lead again.
            budget = (max(0.0, self.timings.renew_deadline - (time.monotonic() - self._last_renewal))
                      if self.leading.is_set() else None)
            held: float | None = None
            try:
                held = await asyncio.wait_for(asyncio.to_thread(self.try_hold), budget)
            except TimeoutError:
                log.warning("leader election: no answer to the renewal within the deadline")
            except Exception as e:
                log.warning("leader election: the Lease could not be read or written: %s", type(e).__name__)
            if held is not None:
                self._last_renewal = held
                if not self.leading.is_set():
                    log.info("leader election: %s now leads (Lease %s/%s)", self.identity, self.namespace, self.name)
                    self.leading.set()
                    if self.on_change is not None:
                        self.on_change(True)
            elif self.leading.is_set() and time.monotonic() - self._last_renewal >= self.timings.renew_deadline:
                log.error("leader election: %s lost the Lease (no renewal for %.0fs); stopping",
                          self.identity, self.timings.renew_deadline)
                self.leading.clear()
                self._stopping = True  # an attempt still running in its thread writes nothing now
                if self.on_change is not None:
                    self.on_change(False)
                self.on_lost()
                return
            pause = self.timings.retry
            if self.leading.is_set():  # never sleep past the deadline: a failed renewal is followed up in time
                pause = min(pause, max(0.0, self.timings.renew_deadline - (time.monotonic() - self._last_renewal)))
            await asyncio.sleep(pause)

    def release(self, attempts: int = 3) -> None:
        """Hand the Lease back (a clean shutdown), so that a standby need not wait for it to expire.

        A renewal that was in flight when `run` was cancelled may write between our read and our
        write: the replace then answers 409 and is tried again on a fresh read. A renewal that reads
        after us sees `_stopping` and writes nothing.
        """
        if not self.leading.is_set():
            return
        self.leading.clear()
        self._stopping = True
        for attempt in range(1, attempts + 1):
            try:
                lease = self.read()
                current = _record(lease) if lease is not None else None
                if current is None or current.holder != self.identity:
                    return
                self._write(released(current), create=False)
                log.info("leader election: %s released the Lease", self.identity)
                return
            except ApiError as e:
                if e.status == 409 and attempt < attempts:
                    continue
                log.warning("leader election: could not release the Lease: %s %s", type(e).__name__, e.status)
                return
            except Exception as e:
                log.warning("leader election: could not release the Lease: %s", type(e).__name__)
                return
