"""Leader election against devenv's real apiserver: two electors on one Lease in a test namespace."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from tests.factories import wait_for_async
from tracardi_operator.leader import Elector, Timings

FAST = Timings(duration=3, renew_deadline=2, retry=0.25)


def _elector(kube_client: Any, namespace: str, identity: str, lost: list[str]) -> Elector:
    return Elector(kube_client, namespace, identity, on_lost=lambda: lost.append(identity), timings=FAST,
                   name="tracardi-operator-test")


def test_one_leader_release_hands_over_at_once_and_a_dead_leader_is_replaced(kube_client: Any, namespace: str) -> None:
    async def scenario() -> None:
        lost: list[str] = []
        a, b = _elector(kube_client, namespace, "a", lost), _elector(kube_client, namespace, "b", lost)
        task_a = asyncio.create_task(a.run())
        await wait_for_async(a.leading.is_set, 10, "a leading")
        task_b = asyncio.create_task(b.run())
        await asyncio.sleep(2 * FAST.duration)
        assert a.leading.is_set()
        assert not b.leading.is_set(), "never two leaders"
        # A clean shutdown hands the Lease over within one retry.
        task_a.cancel()
        await asyncio.to_thread(a.release)
        handover = await wait_for_async(b.leading.is_set, 5, "b taking over")
        assert handover < 2 * FAST.retry + 1
        # A leader that stops renewing (a crash) is replaced once its Lease expires.
        task_b.cancel()
        c = _elector(kube_client, namespace, "c", lost)
        task_c = asyncio.create_task(c.run())
        takeover = await wait_for_async(c.leading.is_set, 10, "c taking over")
        assert FAST.duration - 1 <= takeover <= FAST.duration + 2 * FAST.retry + 1
        task_c.cancel()
        assert lost == []

    asyncio.run(scenario())


def test_a_leader_that_cannot_renew_stops(kube_client: Any, namespace: str) -> None:
    async def scenario() -> None:
        lost: list[str] = []
        a = _elector(kube_client, namespace, "a", lost)
        task = asyncio.create_task(a.run())
        await wait_for_async(a.leading.is_set, 10, "a leading")
        # Someone else takes the Lease over (as after a partition): a's renewals are refused from now on.
        b = _elector(kube_client, namespace, "b", lost)
        lease = a.read()
        assert lease is not None
        lease["spec"]["holderIdentity"] = "b"
        kube_client.request("PUT", f"{a.path}/{a.name}", body=lease)
        await wait_for_async(lambda: bool(lost), FAST.renew_deadline + 3, "a lost lease reported")
        assert lost == ["a"]
        assert not a.leading.is_set()
        await asyncio.wait_for(task, 5)
        del b

    asyncio.run(scenario())


def test_release_wins_over_a_renewal_still_running_in_its_thread(kube_client: Any, namespace: str) -> None:
    """`run` cancelled does not stop a renewal already in its thread: release must still hand over."""
    lost: list[str] = []
    a = _elector(kube_client, namespace, "a", lost)
    assert a.try_hold()
    a.leading.set()
    stop = threading.Event()
    renewals: list[float | None] = []

    def renew_hard() -> None:  # renewals racing the release's read and write
        while not stop.is_set():
            renewals.append(a.try_hold())

    racer = threading.Thread(target=renew_hard)
    racer.start()
    try:
        time.sleep(0.3)
        a.release()
        time.sleep(1.0)
        holder = ((a.read() or {}).get("spec") or {}).get("holderIdentity")
        assert not holder, f"the Lease was taken back by a renewal after release: holder {holder!r}"
        after = len(renewals)
        time.sleep(0.3)
        assert len(renewals) > after, "the racer kept trying"
        assert not any(renewals[after:]), "renewals after release must write nothing"
    finally:
        stop.set()
        racer.join(10)
    assert any(renewals), "the racer renewed before the release"


def test_a_leader_whose_apiserver_stops_answering_stops_within_the_renewal_deadline(silent_server: int) -> None:
    """A renewal that hangs (the apiserver accepts and never answers) must not keep `leading` set past
    `renew_deadline`: a standby may take the Lease once it expires."""
    from tracardi_operator.kubeclient import Credentials, KubeClient

    async def scenario() -> float:
        lost: list[str] = []
        client = KubeClient(Credentials(server=f"http://127.0.0.1:{silent_server}"))
        a = _elector(client, "ns", "a", lost)
        a.leading.set()
        a._last_renewal = time.monotonic()
        started = time.monotonic()
        await asyncio.wait_for(a.run(), FAST.renew_deadline + 5)
        assert lost == ["a"]
        assert not a.leading.is_set()
        return time.monotonic() - started

    stopped = asyncio.run(scenario())
    assert stopped < FAST.renew_deadline + 0.5, f"stopped after {stopped:.1f}s"
