"""A minimal synchronous Elasticsearch HTTP client for the migration Job, configured from its env.

What lives here: `EsClient` (stdlib urllib; JSON in and out; basic auth or API key; TLS with an optional
CA file; bounded retries on connection errors, 429 and 502-504, rotating through the hosts), `EsError`,
and `es_from_env`, which reads TRACARDI_ES_HOSTS, TRACARDI_ES_USERNAME, TRACARDI_ES_PASSWORD,
TRACARDI_ES_API_KEY, TRACARDI_ES_VERIFY_CERTS and TRACARDI_ES_CA_FILE. Only the handful of calls the
Job makes are needed, so no product check and no client library sit in between.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tracardi_operator.httpjson import decode, read_error
from tracardi_operator.jobs.common import JobError
from tracardi_operator.reasons import Reason
from tracardi_operator.scrubbing import scrub

_RETRY_STATUSES = frozenset({429, 502, 503, 504})


class EsError(Exception):
    def __init__(self, method: str, path: str, status: int | None, detail: str) -> None:
        self.method, self.path, self.status, self.detail = method, path, status, detail
        super().__init__(f"{method} {path}: {status if status is not None else 'no answer'}: {detail}")


@dataclass
class EsClient:
    hosts: tuple[str, ...]
    auth_header: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    timeout: float = 120.0
    attempts: int = 5
    sleep: Callable[[float], None] = time.sleep
    secrets: tuple[str, ...] = field(default=(), repr=False)
    _current: int = 0

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        params: Mapping[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> Any:
        """The decoded JSON answer; statuses in `ok_statuses` (e.g. 404) return their body too."""
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        attempt = 0
        while True:
            host = self.hosts[self._current % len(self.hosts)].rstrip("/")
            request = urllib.request.Request(host + path + query, data=data, method=method, headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl_context) as answer:  # noqa: S310
                    return decode(answer.read())
            except urllib.error.HTTPError as error:
                raw = read_error(error)
                if error.code in ok_statuses:
                    return decode(raw)
                if error.code not in _RETRY_STATUSES or attempt + 1 >= self.attempts:
                    raise EsError(method, path, error.code, _detail(raw, self.secrets)) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                self._current += 1
                if attempt + 1 >= self.attempts:
                    reason = getattr(error, "reason", error)
                    raise EsError(method, path, None, type(reason).__name__) from None
            self.sleep(min(8.0, 0.5 * 2**attempt))
            attempt += 1

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: object = None, **params: str) -> Any:
        return self.request("POST", path, body=body, params=params or None)


def unavailable(es: EsClient) -> str | None:
    """Why Elasticsearch does not answer a cluster health request (two attempts), None when it answers."""
    try:
        replace(es, attempts=2, timeout=10.0).request("GET", "/_cluster/health")
    except EsError as error:
        return str(error)
    return None


def es_from_env(environ: Mapping[str, str]) -> EsClient:
    hosts = tuple(h.strip() for h in (environ.get("TRACARDI_ES_HOSTS") or "").split(",") if h.strip())
    if not hosts:
        raise JobError(Reason.CONFIGURATION_ERROR, "TRACARDI_ES_HOSTS is not set: verification needs Elasticsearch")
    hosts = tuple(h if "://" in h else f"http://{h}" for h in hosts)
    auth: str | None = None
    api_key = environ.get("TRACARDI_ES_API_KEY")
    api_key_id = environ.get("TRACARDI_ES_API_KEY_ID")
    if api_key and api_key_id:  # the Secret's apiKeyId and apiKey, as Tracardi takes them
        api_key = f"{api_key_id}:{api_key}"
    username, password = environ.get("TRACARDI_ES_USERNAME"), environ.get("TRACARDI_ES_PASSWORD")
    if api_key:
        # Accept both "id:key" and the already encoded form Elasticsearch hands out.
        encoded = base64.b64encode(api_key.encode()).decode() if ":" in api_key else api_key
        auth = f"ApiKey {encoded}"
    elif username:
        auth = "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
    context: ssl.SSLContext | None = None
    if any(h.startswith("https://") for h in hosts):
        context = ssl.create_default_context(cafile=environ.get("TRACARDI_ES_CA_FILE") or None)
        if (environ.get("TRACARDI_ES_VERIFY_CERTS") or "yes").strip().lower() in ("no", "false", "0"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    secrets = tuple(s for s in (password, environ.get("TRACARDI_ES_API_KEY")) if s)
    return EsClient(hosts=hosts, auth_header=auth, ssl_context=context, secrets=secrets)


def _detail(raw: bytes, secrets: tuple[str, ...] = ()) -> str:
    """Elasticsearch's reason for an error, scrubbed of the client's secrets and only then cut."""
    try:
        body = json.loads(raw)
    except ValueError:
        return scrub(raw.decode("utf-8", "replace"), secrets)[:300]
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        return scrub(f"{error.get('type')}: {error.get('reason')}", secrets)[:300]
    return scrub(str(error or body), secrets)[:300]
