"""The Kubernetes adapter's defaults (no server needed: the request never leaves the client)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tracardi_operator.kube import REQUEST_TIMEOUT, Kube


def test_every_request_gets_a_timeout_unless_it_has_one() -> None:
    api = client.ApiClient(client.Configuration())
    seen: list[Any] = []

    def fake(method: str, url: str, *args: Any, **kwargs: Any) -> None:
        seen.append(kwargs.get("_request_timeout"))

    api.rest_client.request = fake
    Kube(api)
    api.rest_client.request("GET", "http://x/")
    api.rest_client.request("GET", "http://x/", _request_timeout=3)
    assert seen == [REQUEST_TIMEOUT, 3]
