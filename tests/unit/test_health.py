"""Liveness from the watch clock (a pure decision), and the HTTP server in-process on a free port."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.factories import FakeClock
from tracardi_operator.health import HealthServer, liveness
from tracardi_operator.metrics import new_metrics


@pytest.mark.parametrize(
    ("watch_age", "uptime", "alive", "says"),
    [
        (None, 10.0, True, "starting"),  # within the grace period, before any event
        (None, 119.0, True, "starting"),
        (None, 120.0, False, "no watch event since start-up"),  # the stream never delivered
        (0.0, 5000.0, True, "last watch event 0s ago"),
        (900.0, 5000.0, True, "last watch event 900s ago"),  # at the limit still alive
        (901.0, 5000.0, False, "watch stream stale: last event 901s ago"),
        (901.0, 60.0, True, "starting"),  # grace wins over a stale age during start-up
    ],
)
def test_liveness(watch_age: float | None, uptime: float, alive: bool, says: str) -> None:
    ok, reason = liveness(watch_age, uptime, stale_after=900.0, grace=120.0)
    assert ok is alive
    assert says in reason


async def _get(session: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str, str]:
    async with session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, response.headers["Content-Type"], await response.text()


def test_server_serves_metrics_liveness_and_readiness() -> None:
    clock = FakeClock()
    metrics = new_metrics(clock)
    server = HealthServer(metrics, stale_after=60.0, grace=10.0, host="127.0.0.1", port=0)

    async def scenario() -> None:
        port = await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                # Start-up: alive (grace period) but not ready yet.
                assert (await _get(session, port, "/healthz"))[0] == 200
                status, _, body = await _get(session, port, "/readyz")
                assert (status, body) == (503, "not ready: starting\n")
                server.mark_ready()
                assert (await _get(session, port, "/readyz"))[0] == 200

                # After the grace period, without events: the stream is presumed dead.
                clock.now += 11
                status, _, body = await _get(session, port, "/healthz")
                assert status == 503
                assert "no watch event" in body

                metrics.touch()
                clock.now += 60
                assert (await _get(session, port, "/healthz"))[0] == 200
                clock.now += 1
                status, _, body = await _get(session, port, "/healthz")
                assert status == 503
                assert "stale" in body

                metrics.count_reconciliation("ok")
                status, content_type, body = await _get(session, port, "/metrics")
                assert status == 200
                assert content_type.startswith("text/plain")
                assert 'tracardi_operator_reconciliations_total{result="ok"} 1.0' in body
                assert "tracardi_operator_last_watch_event_age_seconds 61.0" in body
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_stop_without_start_is_harmless() -> None:
    asyncio.run(HealthServer(new_metrics(), stale_after=1.0).stop())


def test_a_watch_behind_a_listing_is_stuck_only_when_it_stays_behind() -> None:
    from tracardi_operator.health import watch_lagging, watch_stuck

    a, b, c = ("ns", "a"), ("ns", "b"), ("ns", "c")
    # b changed (rv 7 listed, 5 delivered), c was created and a deleted without the watch telling.
    listed = {b: "7", c: "1"}
    seen = {a: "3", b: "5"}
    assert watch_lagging(listed, seen) == {a, b, c}
    assert watch_lagging({a: "3", b: "5"}, seen) == set()
    # The first heartbeat that sees a lag only notes it: a stream may be a moment behind.
    assert watch_stuck({}, {b}, {b: 10.0}) == set()
    # Still behind a heartbeat later with no event of it since: stuck. An event in between: not.
    assert watch_stuck({b: 100.0}, {b}, {b: 10.0}) == {b}
    assert watch_stuck({b: 100.0}, {b}, {b: 130.0}) == set()
    assert watch_stuck({c: 100.0}, {c}, {}) == {c}
    assert watch_stuck({b: 100.0}, set(), {b: 10.0}) == set()


def test_a_watch_check_is_stuck_from_the_second_check_and_a_deletion_forgets_the_object() -> None:
    from tracardi_operator.health import Delivered, WatchCheck

    a, b = ("ns", "a"), ("ns", "b")
    delivered, check = Delivered(), WatchCheck()
    delivered.record(a, "3", deleted=False, now=1.0)
    assert check.check({a: "3"}, delivered, now=2.0) == set()
    assert check.check({a: "4"}, delivered, now=3.0) == set(), "first seen behind: noted only"
    assert check.check({a: "4"}, delivered, now=4.0) == {a}, "still behind, no event since"
    delivered.record(a, "4", deleted=False, now=4.5)
    assert check.check({a: "4"}, delivered, now=5.0) == set()
    delivered.record(b, "9", deleted=False, now=6.0)
    delivered.record(b, None, deleted=True, now=7.0)
    assert b not in delivered.versions
    assert b not in delivered.at, "a deleted object's time is forgotten too: Jobs come and go"
    assert check.check({a: "4", b: "9"}, delivered, now=8.0) == set(), "a listing made before the deletion"
    assert check.check({a: "4"}, delivered, now=9.0) == set()
