"""The leader election rule (pure): who may write the Lease, and what."""

from __future__ import annotations

import datetime as dt

from tracardi_operator.leader import LeaseRecord, Timings, next_lease, released

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
T = Timings(duration=15, renew_deadline=10, retry=2)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_a_missing_lease_is_taken() -> None:
    assert next_lease(None, "a", T0, T) == LeaseRecord("a", T0, T0, 15, 0)


def test_the_holder_renews_and_keeps_its_acquire_time() -> None:
    held = LeaseRecord("a", T0, T0, 15, 3, "rv1")
    renewed = next_lease(held, "a", at(5), T)
    assert renewed == LeaseRecord("a", T0, at(5), 15, 3, "rv1")


def test_a_valid_foreign_lease_is_left_alone_until_it_expires() -> None:
    held = LeaseRecord("a", T0, T0, 15, 0, "rv1")
    assert next_lease(held, "b", at(14.9), T) is None
    taken = next_lease(held, "b", at(15), T)
    assert taken == LeaseRecord("b", at(15), at(15), 15, 1, "rv1"), "a takeover counts as a transition"


def test_a_released_lease_is_taken_at_once() -> None:
    held = LeaseRecord("a", T0, at(10), 15, 2, "rv2")
    handed_back = released(held)
    assert handed_back.holder is None
    assert next_lease(handed_back, "b", at(10.1), T) == LeaseRecord("b", at(10.1), at(10.1), 15, 3, "rv2")


def test_a_lease_never_renewed_is_free() -> None:
    assert next_lease(LeaseRecord("a", None, None, 15), "b", T0, T) is not None


def test_the_holder_stops_before_anyone_may_start() -> None:
    assert T.renew_deadline < T.duration


def test_a_lease_written_reads_back_as_the_same_record() -> None:
    """What the Elector writes (`_body`) and reads (`_record`): MicroTime with microseconds and a Z, the
    resourceVersion the replace carries."""
    from tracardi_operator.leader import _body, _record

    now = dt.datetime(2026, 12, 7, 20, 50, 1, 123456, tzinfo=dt.UTC)
    record = LeaseRecord("op-1", now - dt.timedelta(seconds=30), now, 15, 2, resource_version="41")
    body = _body("tracardi-operator", "ops", record)
    assert body["spec"]["renewTime"] == "2026-12-07T20:50:01.123456Z"
    assert body["metadata"] == {"name": "tracardi-operator", "namespace": "ops", "resourceVersion": "41"}
    assert _record(body) == record
    free = _body("tracardi-operator", "ops", released(LeaseRecord("op-1", None, None, 15)))
    assert free["spec"] == {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 0}
    assert "resourceVersion" not in free["metadata"]
    assert _record(free).holder is None


def _elector(answer: object, timings: Timings) -> tuple[object, list[str]]:
    from tests.support.scripted_kube import ScriptedClient
    from tracardi_operator.leader import Elector

    lost: list[str] = []
    return Elector(ScriptedClient(answer), "ops", "a", on_lost=lambda: lost.append("a"),  # type: ignore[arg-type]
                   timings=timings), lost


def test_a_renewal_that_hangs_ends_leading_at_the_deadline() -> None:
    """The apiserver accepts the renewal and never answers: `leading` must end by `renew_deadline`, not
    when the request gives up (others may take the Lease once its duration has passed)."""
    import asyncio
    import threading
    import time

    release = threading.Event()

    def hang(*_: object) -> None:
        release.wait(30)
        raise OSError("gave up")

    elector, lost = _elector(hang, Timings(duration=3, renew_deadline=1, retry=0.2))

    async def scenario() -> float:
        elector.leading.set()  # type: ignore[attr-defined]
        elector._last_renewal = time.monotonic()  # type: ignore[attr-defined]
        started = time.monotonic()
        try:
            await asyncio.wait_for(elector.run(), 10)  # type: ignore[attr-defined]
        finally:
            release.set()  # the attempt's thread ends, and asyncio.run need not wait for it
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert lost == ["a"]
    assert elapsed < 1.5, f"stopped leading {elapsed:.1f}s after the last renewal (deadline 1 s)"


def test_the_deadline_counts_from_the_renewal_stamp_not_from_the_answer() -> None:
    """The others count the Lease's duration from the renewTime written; a write answered late must not
    move our deadline later by its own duration."""
    import time

    from tracardi_operator.leader import _body

    held = _body("tracardi-operator", "ops", LeaseRecord("a", T0, T0, 15, 0, resource_version="3"))

    def answer(method: str, *_: object) -> object:
        if method == "PUT":
            time.sleep(0.5)
        return held

    elector, _ = _elector(answer, T)
    before = time.monotonic()
    stamped = elector.try_hold()  # type: ignore[attr-defined]
    assert stamped is not None
    assert stamped - before < 0.3
    assert time.monotonic() - before >= 0.5
