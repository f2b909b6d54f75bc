"""A Job that fails while Elasticsearch does not answer says so: the reason names Elasticsearch."""

from __future__ import annotations

import socket

from tracardi_operator.jobs.cli import _blame_elasticsearch
from tracardi_operator.jobs.common import JobError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failure_while_elasticsearch_is_down_names_it() -> None:
    env = {"TRACARDI_ES_HOSTS": f"http://127.0.0.1:{_closed_port()}"}
    error = _blame_elasticsearch(JobError("ApiError", "GET /install failed with 500: ConnectionError", {"k": 1}), env)
    assert error.reason == "ElasticsearchUnavailable"
    assert error.message.startswith("Elasticsearch did not answer (GET /_cluster/health: no answer")
    assert "when the Job failed with ApiError: GET /install failed with 500" in error.message
    assert error.details == {"k": 1}


def test_other_failures_keep_their_reason() -> None:
    original = JobError("ApiError", "boom")
    assert _blame_elasticsearch(original, {}) is original
    already = JobError("ElasticsearchError", "GET /x: no answer")
    assert _blame_elasticsearch(already, {"TRACARDI_ES_HOSTS": "http://127.0.0.1:1"}) is already
