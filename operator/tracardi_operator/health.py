"""The operator's HTTP endpoints: /metrics, /healthz (liveness) and /readyz (readiness).

kopf has a liveness endpoint of its own, but it stays green while a watch stream silently stops
delivering events; ours fails when no watch event has arrived for too long (`liveness`, pure), so
that the kubelet restarts an operator that no longer sees changes. While nothing changes, the
operator's heartbeat lists the installations (and, less often, the Deployments and Jobs it manages) and
counts as an event only when their watches have delivered every change the listings show (`watch_stuck`,
pure): a stream that stopped delivering is noticed within `stale_after` even on an idle cluster. The
server runs on the operator's event loop (aiohttp, already a dependency of kopf).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tracardi_operator.metrics import Metrics

DEFAULT_GRACE_SECONDS = 120.0
"""Alive during start-up, before the first listing has produced any event."""


def liveness(
    watch_age: float | None, uptime: float, *, stale_after: float, grace: float = DEFAULT_GRACE_SECONDS
) -> tuple[bool, str]:
    """Whether the operator counts as alive, and why: (ok, reason).

    `watch_age` is the number of seconds since the last watch event (None: none yet), `uptime` the
    seconds since start-up.
    """
    if watch_age is not None and watch_age <= stale_after:
        return True, f"last watch event {watch_age:.0f}s ago"
    if uptime < grace:
        return True, f"starting: {uptime:.0f}s of a {grace:.0f}s grace period"
    if watch_age is None:
        return False, f"no watch event since start-up {uptime:.0f}s ago (limit {stale_after:.0f}s)"
    return False, f"watch stream stale: last event {watch_age:.0f}s ago (limit {stale_after:.0f}s)"


Key = tuple[str, str]
"""An object's namespace and name."""

CHILD_WATCHES = ("deployments", "jobs")
"""The watches of an installation's children whose delivery the heartbeat checks too."""


def watch_lagging(listed: Mapping[Key, str], seen: Mapping[Key, str]) -> set[Key]:
    """Objects (installations, Deployments, Jobs) whose state in a listing (their resourceVersion) their
    watch has not delivered: changed or created since the last event of them, or deleted without a
    DELETED event."""
    return {k for k, rv in listed.items() if seen.get(k) != rv} | {k for k in seen if k not in listed}


def watch_stuck(lagging_since: Mapping[Key, float], lagging: set[Key], last_event: Mapping[Key, float]) -> set[Key]:
    """The objects the watch is still behind on, with no event of them since the lag was first
    noticed (`lagging_since`, the time of the previous heartbeat that saw it): a lag that a heartbeat
    later is still there although the change happened before, so not a stream a moment behind."""
    return {k for k in lagging if k in lagging_since and last_event.get(k, -math.inf) < lagging_since[k]}


@dataclass
class Delivered:
    """What one watch delivered: the resourceVersion of each object it has, and when its last event of
    each object came. A deletion forgets both (a listing made before the deletion may still show the
    object; it is lagging for that one heartbeat, and gone from the next listing)."""

    versions: dict[Key, str] = field(default_factory=dict)
    at: dict[Key, float] = field(default_factory=dict)

    def record(self, key: Key, resource_version: str | None, deleted: bool, now: float) -> None:
        if deleted:
            self.versions.pop(key, None)
            self.at.pop(key, None)
            return
        if resource_version:
            self.versions[key] = resource_version
        self.at[key] = now


@dataclass
class WatchCheck:
    """One watch held to fresh listings of what it watches, heartbeat after heartbeat: `check` gives the
    objects it is stuck on (`watch_lagging`, then `watch_stuck` against the lags the previous check saw)."""

    lagging_since: dict[Key, float] = field(default_factory=dict)

    def check(self, listed: Mapping[Key, str], delivered: Delivered, now: float) -> set[Key]:
        lagging = watch_lagging(listed, delivered.versions)
        stuck = watch_stuck(self.lagging_since, lagging, delivered.at)
        self.lagging_since = {k: self.lagging_since.get(k, now) for k in lagging}
        return stuck


class HealthServer:
    """/metrics, /healthz and /readyz for one `Metrics`.

    Ready once `mark_ready()` was called (the operator calls it when its clients are built and its
    handlers registered); alive as `liveness` decides from the metrics' watch clock.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        stale_after: float,
        grace: float = DEFAULT_GRACE_SECONDS,
        host: str = "0.0.0.0",  # noqa: S104 - the kubelet and Prometheus reach the pod on its own IP
        port: int = 8080,
    ) -> None:
        self.metrics = metrics
        self.stale_after = stale_after
        self.grace = grace
        self.host = host
        self.port = port
        self.ready = False
        self._runner: web.AppRunner | None = None

    def mark_ready(self) -> None:
        self.ready = True

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> int:
        """Serve until `stop()`; returns the bound port (useful with port 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None)  # probes every few seconds: no log
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        address = self._runner.addresses[0]
        return int(address[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, reason = liveness(
            self.metrics.watch_age(), self.metrics.uptime(), stale_after=self.stale_after, grace=self.grace
        )
        return web.Response(status=200 if ok else 503, text=f"{'ok' if ok else 'unhealthy'}: {reason}\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text="ok: ready\n")
        return web.Response(status=503, text="not ready: starting\n")
