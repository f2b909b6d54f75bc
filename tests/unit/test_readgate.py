"""ReadGate: one read at a time per key. Callers that find the value due while another reads it get the
kept value at once, or, with none kept, wait for that read; a failed read leaves the waiters to read on
their own; a key's gate is forgotten when nobody holds it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tracardi_operator.readgate import ReadGate


class Value:
    """A cached value read by `read`, which blocks until the test lets it go."""

    def __init__(self) -> None:
        self.young: str | None = None
        self.old: str | None = None
        self.reads = 0
        self.started = threading.Event()
        self.go = threading.Event()
        self.fail = False

    def read(self) -> str:
        self.reads += 1
        self.started.set()
        assert self.go.wait(10)
        if self.fail:
            self.fail = False
            raise RuntimeError("the read failed")
        self.young = f"read {self.reads}"
        return self.young

    def serve(self, gate: ReadGate[str, str]) -> str:
        return gate.serve("k", current=lambda: self.young, kept=lambda: self.old, read=self.read)


def holding(gate: ReadGate[str, str], callers: int) -> None:
    deadline = time.monotonic() + 10
    while getattr(gate._gates.get("k"), "users", 0) < callers:
        assert time.monotonic() < deadline, "the callers never reached the gate"
        time.sleep(0.005)


def read_while_waiting(pool: ThreadPoolExecutor, gate: ReadGate[str, str], value: Value,
                       waiters: int) -> tuple[Future[str], list[Future[str]]]:
    """One caller reading (held), `waiters` callers waiting at the gate for it; then the read let go."""
    first = pool.submit(value.serve, gate)
    assert value.started.wait(5)
    others = [pool.submit(value.serve, gate) for _ in range(waiters)]
    holding(gate, waiters + 1)
    value.go.set()
    return first, others


def test_a_current_value_is_served_without_the_gate() -> None:
    gate: ReadGate[str, str] = ReadGate()
    value = Value()
    value.young = "young"
    assert value.serve(gate) == "young"
    assert value.reads == 0
    assert gate._gates == {}


def test_callers_with_nothing_kept_wait_for_the_one_read_in_flight() -> None:
    gate: ReadGate[str, str] = ReadGate()
    value = Value()
    with ThreadPoolExecutor(6) as pool:
        first, others = read_while_waiting(pool, gate, value, 5)
        answers = {first.result(5), *(f.result(5) for f in others)}
    assert answers == {"read 1"}
    assert value.reads == 1
    assert gate._gates == {}  # forgotten once nobody holds it


def test_while_one_caller_reads_the_others_get_the_kept_value_at_once() -> None:
    gate: ReadGate[str, str] = ReadGate()
    value = Value()
    value.old = "old"
    with ThreadPoolExecutor(3) as pool:
        reading = pool.submit(value.serve, gate)
        assert value.started.wait(5)
        # Served while the read is held: waiting for it would time out, as it is let go after.
        assert pool.submit(value.serve, gate).result(5) == "old"
        value.go.set()
        assert reading.result(5) == "read 1"
    assert value.reads == 1


def test_a_failed_read_leaves_a_waiter_to_read_on_its_own() -> None:
    gate: ReadGate[str, str] = ReadGate()
    value = Value()
    value.fail = True
    with ThreadPoolExecutor(2) as pool:
        first, (waiter,) = read_while_waiting(pool, gate, value, 1)
        with pytest.raises(RuntimeError):
            first.result(5)
        assert waiter.result(5) == "read 2"
    assert gate._gates == {}


def test_keys_are_gated_apart() -> None:
    gate: ReadGate[str, str] = ReadGate()
    value = Value()
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(value.serve, gate)
        assert value.started.wait(5)
        assert gate.serve("other", current=lambda: None, kept=lambda: None, read=lambda: "other's") == "other's"
        value.go.set()
        held.result(5)
