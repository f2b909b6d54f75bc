"""The watch event that only echoes the operator's own status patch does not wake another pass; every
other event of the installation does (a spec change, a label, someone else's status write)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.scripted_kube import ScriptedClient
from tracardi_operator.applied import StatusWrites
from tracardi_operator.kube import Kube
from tracardi_operator.runtime import Runtime
from tracardi_operator.scheduler import Urgency
from tracardi_operator.settings import Settings


def _kube(versions: list[str]) -> Kube:
    """A Kube whose status patches are stored at the given resourceVersions, one after the other."""
    def answer(method: str, path: str, *_: Any) -> dict[str, Any]:
        assert method == "PATCH"
        assert path.endswith("/status")
        return {"metadata": {"resourceVersion": versions.pop(0)}}

    return Kube(ScriptedClient(answer))


def test_only_the_echo_of_the_last_own_status_patch_is_recognised() -> None:
    writes = StatusWrites()
    kube = _kube(["41", "45"])
    kube.on_status_written = writes.record
    assert not writes.echo("shop", "acme", "41")
    kube.patch_status("shop", "acme", {"phase": "Ready"})
    assert writes.echo("shop", "acme", "41")
    assert not writes.echo("shop", "acme", "42"), "a later change by anyone else"
    assert not writes.echo("shop", "other", "41"), "another installation"
    assert not writes.echo("shop", "acme", None)
    kube.patch_status("shop", "acme", {"phase": "Upgrading"})
    assert not writes.echo("shop", "acme", "41")
    assert writes.echo("shop", "acme", "45")
    writes.forget("shop", "acme")
    assert not writes.echo("shop", "acme", "45")


def test_an_echo_does_not_wake_the_loop_but_any_other_change_does() -> None:
    async def scenario() -> None:
        kube = _kube(["7"])
        runtime = Runtime(settings=Settings(), kube=kube)
        wake = asyncio.Event()
        runtime.wakeups[("shop", "acme")] = wake
        kube.patch_status("shop", "acme", {"phase": "Ready"})
        runtime.changed("shop", "acme", "7")
        assert not wake.is_set(), "the echo of the pass's own write"
        runtime.changed("shop", "acme", "8")
        assert wake.is_set(), "a change made after it (a spec bump, an annotation)"
        assert runtime.scheduler.pending("shop", "acme") is Urgency.CHANGE, "someone's edit goes first"
        # The next cases use installations with no wake pending yet (a wake keeps its most urgent reason).
        other = runtime.wakeups[("shop", "other")] = asyncio.Event()
        runtime.changed("shop", "other", None)
        assert other.is_set(), "an event without a version is never taken for an echo"
        runtime.wakeups[("shop", "third")] = asyncio.Event()
        runtime.changed("shop", "third", "9", listed=True)
        assert runtime.scheduler.pending("shop", "third") is Urgency.EVENT, "the initial listing is no edit"
        runtime.wakeups[("shop", "fourth")] = asyncio.Event()
        assert runtime.scheduler.pending("shop", "fourth") is None
        runtime.wake_labelled("shop", "fourth")
        assert runtime.scheduler.pending("shop", "fourth") is Urgency.EVENT, "a child's event"

    asyncio.run(scenario())


def test_a_policy_wakes_the_installations_only_when_what_it_says_changed() -> None:
    runtime = Runtime(settings=Settings(), kube=_kube([]))
    assert runtime.policy_seen("keep-two", 1), "first seen (created, or listed at start-up)"
    assert not runtime.policy_seen("keep-two", 1), "the operator's own status write: same generation"
    assert runtime.policy_seen("keep-two", 2), "a spec change makes a new generation"
    assert not runtime.policy_seen("keep-two", 2)
    assert runtime.policy_seen("keep-two", 2, deleted=True)
    assert runtime.policy_seen("keep-two", 2), "created again under the same name"
    assert runtime.policy_seen("other", None), "no generation: always"
    assert runtime.policy_seen("other", None), "no generation: always"
