"""What many tests build alike, in one place: TracardiInstallation objects, the apiserver's merge patch, a
clock the test moves, and waiting until something holds (a predicate polled with a timeout).

Plain helpers, no fixtures: unit, integration and end-to-end tests import them alike.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from tracardi_operator import GROUP_VERSION

T = TypeVar("T")

# -- installations ------------------------------------------------------------------------------------

ADMIN_SECRET = "acme-admin"
"""The Secret (keys username, password) the factory's installations name as spec.installation.adminSecretRef."""
TOKEN_SECRET = "acme-install"
"""The Secret (key token) the factory's installations name as spec.installation.tokenSecretRef."""


def installation_spec(
    version: str = "0.8.1",
    *,
    hosts: Sequence[str] = ("http://es:9200",),
    redis_url: str = "redis://redis:6379",
    **sections: Any,
) -> dict[str, Any]:
    """A TracardiInstallation spec as a user writes it (camelCase): every required field, nothing
    defaulted. `sections` (camelCase keys such as elasticsearch, paused, env) replace or add whole
    top-level fields."""
    spec: dict[str, Any] = {
        "version": version,
        "elasticsearch": {"hosts": list(hosts)},
        "redis": {"url": redis_url},
        "installation": {
            "adminSecretRef": {"name": ADMIN_SECRET},
            "tokenSecretRef": {"name": TOKEN_SECRET, "key": "token"},
        },
    }
    spec.update(sections)
    return spec


def installation_body(
    spec: Mapping[str, Any] | None = None,
    *,
    name: str = "acme",
    status: Mapping[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """A whole TracardiInstallation object: `spec` (default `installation_spec()`), metadata.name `name`
    plus `metadata` (namespace, uid, generation, labels, ...), and `status` when given."""
    body: dict[str, Any] = {
        "apiVersion": GROUP_VERSION,
        "kind": "TracardiInstallation",
        "metadata": {"name": name, **metadata},
        "spec": dict(spec) if spec is not None else installation_spec(),
    }
    if status is not None:
        body["status"] = dict(status)
    return body


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Apply a JSON merge patch (RFC 7386) to `target` in place, as the apiserver applies a status patch:
    None removes a key, a mapping merges into a mapping, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


# -- time ---------------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic seconds that move only when the test moves them: call it for the time; `now += s` or
    `sleep(s)` (a stand-in for time.sleep) to let time pass."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# -- waiting ------------------------------------------------------------------------------------------

NOTE_EVERY = 20.0
"""Seconds between the notes on stderr that say what a long wait is waiting for."""


def wait_for(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float,
    what: str = "the condition",
    interval: float = 0.5,
    *,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `predicate` every `interval` seconds until it returns something truthy, and return that;
    AssertionError naming `what` after `timeout` seconds. A falsy answer (None, False, 0, empty) means "not
    yet", so the type returned is the predicate's without None and False. Exceptions of the types in
    `ignoring` count as "not yet" (the last one is named on timeout). A wait longer than NOTE_EVERY says so
    on stderr."""
    started = last_note = time.monotonic()
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except ignoring as exc:
            last_error = exc
        else:
            if value:
                return value
        now = time.monotonic()
        if now - started > timeout:
            detail = f" (last error: {last_error})" if last_error is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        if now - last_note > NOTE_EVERY:
            print(f"  ... {what}: {now - started:.0f}s", file=sys.stderr, flush=True)
            last_note = now
        time.sleep(interval)


async def wait_for_async(
    predicate: Callable[[], Any], timeout: float, what: str = "the condition", interval: float = 0.05
) -> float:
    """`wait_for` inside an event loop (sleeping with asyncio, so other tasks run meanwhile); returns
    the seconds it waited, for tests that measure how soon something happens."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - started
