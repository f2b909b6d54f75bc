"""One reconcile pass of one installation, and the loop that repeats it when something changes.

A pass reads the installation and its children, asks `rollout.decide` what to do, records the new
status first, then applies, creates and deletes, then posts Events. The loop sleeps until a watch
event wakes it (the installation or one of its Jobs or Deployments changed) or until its next check
is due; there is no polling loop per installation beyond that.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from tracardi_operator import builders, conditions
from tracardi_operator.kube import Kube
from tracardi_operator.labels import ANNOTATION_RETRY
from tracardi_operator.models import TracardiInstallation
from tracardi_operator.observe import observe
from tracardi_operator.rollout import Context, Decision, decide
from tracardi_operator.settings import Settings

log = logging.getLogger("tracardi_operator")

Key = tuple[str, str]  # namespace, name


@dataclass
class Runtime:
    """Everything a pass needs, built once at start-up and shared by every installation."""

    settings: Settings
    kube: Kube
    metrics: Any = None
    wakeups: dict[Key, asyncio.Event] = field(default_factory=dict)
    last_watch_event: float = field(default_factory=time.monotonic)

    def wake(self, namespace: str, name: str) -> None:
        event = self.wakeups.get((namespace, name))
        if event is not None:
            event.set()

    def touch(self) -> None:
        self.last_watch_event = time.monotonic()
        if self.metrics is not None:
            self.metrics.touch()

    async def heartbeat(self, every: float = 60.0) -> None:
        """Liveness evidence when nothing changes: the API answers (installations' passes count too)."""
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(self.kube.ping)
            except Exception as e:
                log.warning("the Kubernetes API did not answer the heartbeat: %s", _safe(e))
                continue
            self.touch()

    # -- the loop ---------------------------------------------------------------------------------
    async def installation_loop(self, namespace: str, name: str, stopped: Any) -> None:
        key = (namespace, name)
        wake = self.wakeups.setdefault(key, asyncio.Event())
        failures = 0
        try:
            while not stopped:
                wake.clear()
                try:
                    delay = await asyncio.to_thread(self.reconcile_once, namespace, name)
                    failures = 0
                    self.touch()
                except Exception as e:
                    failures += 1
                    delay = min(300.0, 2.0 ** min(failures, 8))
                    log.warning("reconcile of %s/%s failed (attempt %d, retry in %.0fs): %s",
                                namespace, name, failures, delay, _safe(e))
                    self._count("error")
                if delay is None:
                    delay = self.settings.resync_seconds * random.uniform(0.9, 1.1)
                await _sleep_until(wake, stopped, delay)
        finally:
            self.wakeups.pop(key, None)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.reconciled(result)

    # -- one pass ---------------------------------------------------------------------------------
    def reconcile_once(self, namespace: str, name: str) -> float | None:
        body = self.kube.get_installation(namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None
        try:
            inst = TracardiInstallation.model_validate(body)
        except ValidationError as e:
            self._invalid(body, e)
            return None
        observed = observe(self.kube.list_children(namespace, name))
        ctx = Context(
            now=dt.datetime.now(dt.UTC).replace(microsecond=0),
            builder=builders.BuilderSettings(
                job_image=self.settings.job_image,
                job_active_deadline_seconds=self.settings.job_deadline_seconds,
            ),
            api_addressing=self.settings.api_addressing,
            retry=(inst.metadata.annotations or {}).get(ANNOTATION_RETRY),
        )
        decision = decide(inst, observed, ctx)
        self._carry_out(inst, body, decision)
        self._count("success")
        return decision.requeue_after

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


async def _sleep_until(wake: asyncio.Event, stopped: Any, delay: float) -> None:
    async def stop() -> None:
        await stopped.wait()

    waiters: list[asyncio.Task[Any]] = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
