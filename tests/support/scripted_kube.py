"""A `KubeClient` whose requests never leave the process, for the unit tests of `Kube` and `Runtime`:
`answer(method, path, query, body)` answers each request, and every request is recorded in `sent`
(with its content type and accepted type in `headers`).
The client's own request code (headers, timeouts, errors) is tested against devenv's apiserver
(tests/integration/test_kubeclient.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tracardi_operator.kubeclient import Credentials, KubeClient

Answer = Callable[[str, str, dict[str, str], Any], Any]


class ScriptedClient(KubeClient):
    def __init__(self, answer: Answer | None = None) -> None:
        super().__init__(Credentials(server="http://127.0.0.1:9"))  # the discard port: nothing is sent
        self.answer: Answer = answer or (lambda *_: {})
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []
        self.headers: list[tuple[str, str]] = []

    def request(
        self, method: str, path: str, *, query: Sequence[tuple[str, str]] | Mapping[str, str] = (),
        body: Any = None, content_type: str = "application/json", accept: str = "application/json",
        timeout: tuple[float, float] | None = None, retries: int | None = None,
    ) -> Any:
        params = dict(query.items() if isinstance(query, Mapping) else query)
        self.sent.append((method, path, params, body))
        self.headers.append((content_type if body is not None else "", accept))
        return self.answer(method, path, params, body)
