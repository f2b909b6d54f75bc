"""Secrets are scrubbed before a message is shaped (whitespace collapsed, cut): no part of one survives.

Tracardi's API and the Jobs' own failures both end in one-line messages of bounded length; each test
puts a secret where the shaping used to hide it from the scrubbing (urlopen faked: no network).
"""

from __future__ import annotations

import argparse
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tracardi_operator.jobs import cli
from tracardi_operator.jobs.common import JobError
from tracardi_operator.tracardi_api import RetryPolicy, TracardiApi, TracardiApiError

SPACED = "correct  horse battery"  # a double space
TABBED = "tab\tbed-Pass\tword"
NON_ASCII = "pässwörd-Grüße-密码-ключ"
LONG = "L0ng-" + "x7Qz" * 100  # 405 characters: longer than any cut


def leaks(secret: str, text: str, window: int = 6) -> list[str]:
    """Every run of `window` characters of `secret` (in any spelling a shaper may give it) in `text`."""
    spellings = {
        secret,
        " ".join(secret.split()),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    found = []
    for spelling in spellings:
        for start in range(0, max(1, len(spelling) - window + 1)):
            piece = spelling[start : start + window]
            if piece.strip() and piece in text:
                found.append(piece)
    return found


def http_error(status: int, body: object) -> urllib.error.HTTPError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return urllib.error.HTTPError("u", status, "x", {}, io.BytesIO(raw))  # type: ignore[arg-type]


def failing_login(monkeypatch: pytest.MonkeyPatch, password: str, body: object) -> TracardiApiError:
    def urlopen(request: urllib.request.Request, timeout: float = 0) -> Any:
        raise http_error(400, body)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    client = TracardiApi("http://t", retry=RetryPolicy(attempts=1, base=0.0), sleep=lambda _: None)
    with pytest.raises(TracardiApiError) as info:
        client.login("admin@example.com", password)
    return info.value


@pytest.mark.parametrize("password", [SPACED, TABBED, NON_ASCII, LONG], ids=["spaces", "tab", "non-ascii", "long"])
def test_api_detail_echoing_the_password_keeps_none_of_it(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    error = failing_login(monkeypatch, password, {"detail": f"Bad password {password} for admin"})
    assert leaks(password, error.detail) == []
    assert leaks(password, str(error)) == []
    assert error.detail.startswith("Bad password ***")


@pytest.mark.parametrize("password", [SPACED, TABBED, NON_ASCII, LONG], ids=["spaces", "tab", "non-ascii", "long"])
def test_api_detail_of_a_body_that_is_not_a_string_keeps_none_of_it(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    # No string `detail`: the raw JSON text is shown, where a tab is `\t` and non-ASCII is `\u00e4`.
    error = failing_login(monkeypatch, password, {"error": {"password": password, "why": "rejected"}})
    assert leaks(password, error.detail) == []


def test_api_detail_with_the_password_across_the_cut_keeps_none_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    password = "Cr0ss1ng-the-Cut-" + "k9" * 10
    text = "x" * 290 + password + " and more"  # the 300-character cut falls inside the password
    error = failing_login(monkeypatch, password, {"detail": text})
    assert leaks(password, error.detail) == []
    assert len(error.detail) <= 300
    raw = failing_login(monkeypatch, password, text.encode())  # a body that is not JSON at all
    assert leaks(password, raw.detail) == []


def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: BaseException, env: dict[str, str]) -> str:
    def fail(*args: object) -> dict[str, Any]:
        raise error

    monkeypatch.setattr(cli, "_migrate", fail)
    term = tmp_path / "term"
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    cli.run_job(argparse.Namespace(job_command="migrate"), {**env, "TERMINATION_MESSAGE_PATH": str(term)})
    return out.getvalue() + term.read_text()


@pytest.mark.parametrize("password", [SPACED, TABBED, NON_ASCII, LONG], ids=["spaces", "tab", "non-ascii", "long"])
def test_job_failure_keeps_no_secret_in_any_spelling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, password: str
) -> None:
    env = {"TRACARDI_ES_PASSWORD": password}
    # A message shaped on the way (whitespace collapsed, JSON-escaped) before it reached the Job.
    shaped = f"login failed: {' '.join(password.split())} / {json.dumps(password)}"
    printed = run(monkeypatch, tmp_path, JobError("LoginRejected", shaped), env)
    assert leaks(password, printed) == []


@pytest.mark.parametrize("password", [SPACED, TABBED, NON_ASCII, LONG], ids=["spaces", "tab", "non-ascii", "long"])
def test_job_crash_with_the_secret_across_the_cut_keeps_none_of_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, password: str
) -> None:
    env = {"TRACARDI_ADMIN_PASSWORD": password}
    crash = RuntimeError("y" * 480 + password)  # the 500-character cut falls inside (or before) the secret
    printed = run(monkeypatch, tmp_path, crash, env)
    assert leaks(password, printed) == []
    assert "InternalError" in printed


@pytest.mark.parametrize("password", [SPACED, NON_ASCII, LONG], ids=["spaces", "non-ascii", "long"])
def test_elasticsearch_error_with_the_password_across_the_cut_keeps_none_of_it(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    from tracardi_operator.jobs.es import EsError, es_from_env

    def urlopen(request: urllib.request.Request, timeout: float = 0, context: object = None) -> Any:
        raise http_error(400, {"error": {"type": "parse_exception", "reason": "y" * 270 + password}})

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    client = es_from_env(
        {"TRACARDI_ES_HOSTS": "http://es:9200", "TRACARDI_ES_USERNAME": "u", "TRACARDI_ES_PASSWORD": password}
    )
    with pytest.raises(EsError) as info:
        client.get("/")
    assert leaks(password, str(info.value)) == []
