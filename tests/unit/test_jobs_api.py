"""The Tracardi API client: answers, retries, re-login and secret-free errors (urlopen faked: no network)."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tracardi_operator.tracardi_api import ApiUnreachableError, RetryPolicy, TracardiApi, TracardiApiError


class Answer(io.BytesIO):
    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def http_error(status: int, body: object) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("u", status, "x", {}, io.BytesIO(json.dumps(body).encode()))  # type: ignore[arg-type]


Handler = Callable[[urllib.request.Request], object]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Callable[[Handler], list[urllib.request.Request]]:
    def install(handler: Handler) -> list[urllib.request.Request]:
        seen: list[urllib.request.Request] = []

        def urlopen(request: urllib.request.Request, timeout: float = 0) -> Answer:
            seen.append(request)
            outcome = handler(request)
            if isinstance(outcome, BaseException):
                raise outcome
            return Answer(json.dumps(outcome).encode())

        monkeypatch.setattr(urllib.request, "urlopen", urlopen)
        return seen

    return install


def api() -> TracardiApi:
    return TracardiApi("http://t", retry=RetryPolicy(attempts=3, base=0.0), sleep=lambda _: None)


def test_version_details_of_080_derives_the_db_version(served: Any) -> None:
    served(lambda r: {"version": "0.8.0", "name": "fa73a"})
    details = api().version_details()
    assert (details.db_version, details.tenant, details.installed) == ("080", "fa73a", None)


def test_5xx_is_retried_then_given_up(served: Any) -> None:
    answers = iter([http_error(503, {"detail": "busy"}), {"schema_ok": True, "admin_ok": True}])
    served(lambda r: next(answers))
    assert api().install_status().schema_ok
    seen = served(lambda r: http_error(500, {"detail": "boom"}))
    with pytest.raises(TracardiApiError) as info:
        api().install_status()
    assert info.value.status == 500
    assert len(seen) == 3


def test_connection_errors_become_api_unreachable(served: Any) -> None:
    served(lambda r: urllib.error.URLError(ConnectionRefusedError()))
    with pytest.raises(ApiUnreachableError):
        api().healthcheck()


def test_start_migration_is_never_repeated_after_a_500(served: Any) -> None:
    def handler(request: urllib.request.Request) -> object:
        if request.full_url.endswith("/user/token"):
            return {"access_token": "t0k3n"}
        return http_error(500, {"detail": "oops"})

    seen = served(handler)
    client = api()
    client.login("a@b.c", "pw")
    with pytest.raises(TracardiApiError):
        client.start_migration("08x", "01506", ["1"], "staging")
    assert sum(1 for r in seen if r.full_url.endswith("/migration")) == 1


def test_401_logs_in_again_once(served: Any) -> None:
    tokens = iter(["first", "second"])
    calls: list[str | None] = []

    def handler(request: urllib.request.Request) -> object:
        if request.full_url.endswith("/user/token"):
            assert request.data == b"username=a%40b.c&password=pw"
            return {"access_token": next(tokens)}
        calls.append(request.get_header("Authorization"))
        return http_error(401, {"detail": "Invalid authentication credentials"}) if len(calls) == 1 else ["080"]

    served(handler)
    client = api()
    client.login("a@b.c", "pw")
    assert client.migrations() == ["080"]
    assert calls == ["Bearer first", "Bearer second"]


def test_errors_carry_no_secret(served: Any) -> None:
    detail = [{"loc": ["body", "password"], "msg": "bad", "input": "hunter22"}]
    served(lambda r: http_error(422, {"detail": detail}))
    with pytest.raises(TracardiApiError) as info:
        api().install("admin@x.y", "hunter22", "inst-token")
    assert "hunter22" not in str(info.value)
    assert "body.password: bad" in info.value.detail
    served(lambda r: http_error(403, {"detail": "token inst-token is wrong"}))
    with pytest.raises(TracardiApiError) as info:
        api().install("admin@x.y", "hunter22", "inst-token")
    assert "inst-token" not in str(info.value)


def test_listing_tasks_and_status_shapes(served: Any) -> None:
    listing = {
        "warn": False,
        "schemas": [
            {"id": "a", "worker": "reindex", "copy_index": {"from_index": "f", "to_index": "t", "production": True}},
            {"id": "broken"},
        ],
    }
    tasks = {
        "grouped": {
            "Tasks": [
                {
                    "id": "1",
                    "task_id": "c1",
                    "name": 'Migration of "f"',
                    "params": {"copy_index": {"from_index": "f", "to_index": "t"}},
                },
                {"id": "o1", "task_id": "o1", "name": "Migration plan orchestrator", "event_type": "missing"},
            ]
        }
    }
    answers: dict[str, object] = {
        "/user/token": {"access_token": "x"},
        "/migration/08x?from_tenant_name=01506": listing,
        "/tasks/type/upgrade?limit=1000": tasks,
        "/tasks/type/upgrade?limit=2&query=Migration+of+%22f%22": tasks,
        "/import/task/c1/status": {"id": "c1", "status": "PROGRESS", "progress": {"current": 1, "total": 2}},
    }
    seen = served(lambda r: answers[r.full_url.removeprefix("http://t")])
    client = api()
    client.login("a@b.c", "pw")
    (entry,) = client.migration_schemas("08x", "01506", "production").entries
    assert (entry.from_index, entry.to_index, entry.production) == ("f", "t", True)
    assert seen[-1].get_header("X-context") == "production"
    listing = client.upgrade_tasks("staging", limit=1000)
    assert listing.complete
    task, orchestrator = listing.tasks
    assert orchestrator.from_index is None
    assert (task.task_id, task.from_index) == ("c1", "f")
    assert not client.upgrade_tasks("staging", limit=2, query='Migration of "f"').complete  # 2 documents: full
    status = client.task_status("c1", "staging")
    assert (status.status, status.current, status.total) == ("PROGRESS", 1, 2)


def test_elasticsearch_api_key_from_id_and_key() -> None:
    import base64

    from tracardi_operator.jobs.es import es_from_env

    client = es_from_env({"TRACARDI_ES_HOSTS": "http://es:9200", "TRACARDI_ES_API_KEY_ID": "kid",
                          "TRACARDI_ES_API_KEY": "secret"})
    assert client.auth_header == "ApiKey " + base64.b64encode(b"kid:secret").decode()
    encoded = base64.b64encode(b"a:b").decode()
    client = es_from_env({"TRACARDI_ES_HOSTS": "http://es:9200", "TRACARDI_ES_API_KEY": encoded})
    assert client.auth_header == f"ApiKey {encoded}"
