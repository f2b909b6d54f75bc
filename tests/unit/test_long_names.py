"""An installation whose name is longer than a label value allows (63 characters): its children carry
the name cut to fit (`labels.label_value`), and the operator finds them and is woken by them."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.scripted_kube import ScriptedClient
from tracardi_operator.kube import Kube
from tracardi_operator.labels import label_value
from tracardi_operator.runtime import Runtime
from tracardi_operator.settings import Settings

LONG = "a" * 30 + "-" + "b" * 39  # 70 characters: valid as a name, too long as a label value


def test_children_of_a_long_name_are_selected_by_its_label_value() -> None:
    selectors: list[str] = []

    def answer(method: str, path: str, query: dict[str, str], _: Any) -> dict[str, Any]:
        selectors.append(query["labelSelector"])
        return {"items": []}

    api = ScriptedClient(answer)
    Kube(api).list_children("ns", LONG)
    assert len(label_value(LONG)) <= 63
    assert selectors == [f"app.kubernetes.io/instance={label_value(LONG)},"
                         "app.kubernetes.io/managed-by=tracardi-operator"] * 4
    selectors.clear()
    Kube(api).list_children("ns", "acme")
    assert selectors[0].startswith("app.kubernetes.io/instance=acme,")


def test_a_child_event_wakes_the_installation_of_a_long_name() -> None:
    async def scenario() -> None:
        runtime = Runtime(settings=Settings(), kube=Kube(ScriptedClient()))
        long_wake, short_wake, other_ns = asyncio.Event(), asyncio.Event(), asyncio.Event()
        runtime.wakeups.update({("ns", LONG): long_wake, ("ns", "acme"): short_wake, ("other", LONG): other_ns})
        runtime.wake_labelled("ns", label_value(LONG))
        assert long_wake.is_set()
        assert not short_wake.is_set()
        assert not other_ns.is_set()
        runtime.wake_labelled("ns", "acme")
        assert short_wake.is_set()

    asyncio.run(scenario())
