"""A small synchronous client for the parts of Tracardi's HTTP API the install and migration Jobs use.

What lives here: `TracardiApi` (stdlib urllib; one method per endpoint of docs/tracardi.md §4, §5, §8)
and the typed errors it raises; the typed answers it returns live in `tracardi_answers` (importable
from here too). Every error carries the HTTP status and Tracardi's `detail` text with every secret
the client knows about replaced by `***`; validation errors are reduced to field locations and
messages (FastAPI echoes the input, which may hold a password).

Retries: connection errors and 5xx are retried with bounded exponential backoff, but only for requests
that are safe to repeat. `POST /migration` starts copies that must run exactly once: it is retried only
when the connection was refused (the request never reached Tracardi).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator.httpjson import decode, read_error
from tracardi_operator.scrubbing import one_line, scrub
from tracardi_operator.tracardi_answers import (
    TASK_LISTING_LIMIT,
    InstallStatus,
    MigrationEntry,
    MigrationListing,
    TaskListing,
    TaskStatus,
    UpgradeTask,
    VersionDetails,
    db_version_of,
    int_or_none,
    migration_entry,
    upgrade_task,
)

CONTEXTS = ("staging", "production")
_DETAIL_LIMIT = 300

__all__ = [
    "CONTEXTS",
    "TASK_LISTING_LIMIT",
    "ApiUnreachableError",
    "InstallStatus",
    "MigrationEntry",
    "MigrationListing",
    "RetryPolicy",
    "TaskListing",
    "TaskStatus",
    "TracardiApi",
    "TracardiApiError",
    "UnexpectedAnswerError",
    "UpgradeTask",
    "VersionDetails",
    "db_version_of",
]


class TracardiApiError(Exception):
    """Tracardi answered with an error status (after any retries)."""

    def __init__(self, method: str, path: str, status: int | None, detail: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        super().__init__(f"{method} {path}: {status if status is not None else 'no answer'}: {detail}")


class ApiUnreachableError(TracardiApiError):
    """No HTTP answer at all (connection refused, reset, timed out) after the retries."""

    def __init__(self, method: str, path: str, detail: str) -> None:
        super().__init__(method, path, None, detail)


class UnexpectedAnswerError(TracardiApiError):
    """A 2xx answer whose body does not have the documented shape."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: `attempts` tries in all, waits base·2ⁿ capped at `cap` seconds."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 8.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * (2**attempt)))


@dataclass
class TracardiApi:
    """One Tracardi API (a base URL). Not thread-safe; a Job uses one instance from one thread."""

    base_url: str
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    _token: str | None = field(default=None, repr=False)
    _credentials: tuple[str, str] | None = field(default=None, repr=False)
    _secrets: set[str] = field(default_factory=set, repr=False)

    # -- unauthenticated --------------------------------------------------------------------------
    def healthcheck(self) -> None:
        self._call("GET", "/healthcheck")

    def version_details(self) -> VersionDetails:
        body = _as_mapping(self._call("GET", "/info/version/details"), "GET /info/version/details")
        version = str(body.get("version") or "")
        tenant = body.get("name")
        if not version or not isinstance(tenant, str):
            raise UnexpectedAnswerError("GET", "/info/version/details", 200, "no version or name")
        production = body.get("production")
        installed = body.get("installed")
        return VersionDetails(
            version=version,
            tenant=tenant,
            db_version=db_version_of(version, body.get("db_version")),
            production=production if isinstance(production, bool) else None,
            installed=installed if isinstance(installed, Mapping) else None,
        )

    def install_status(self) -> InstallStatus:
        body = _as_mapping(self._call("GET", "/install"), "GET /install")
        form_ok = body.get("form_ok")
        warning = body.get("warning")
        return InstallStatus(
            schema_ok=body.get("schema_ok") is True,
            admin_ok=body.get("admin_ok") is True,
            form_ok=form_ok if isinstance(form_ok, bool) else None,
            warning=str(warning) if warning else None,
        )

    def install(self, username: str, password: str, token: str, timeout: float | None = None) -> Any:
        """POST /install (idempotent in Tracardi). A 200 proves nothing: poll `install_status`."""
        self._secrets.update(s for s in (password, token) if s)
        body = {
            "username": username,
            "password": password,
            "token": token,
            "needs_admin": True,
            "update_mapping": False,
        }
        return self._call("POST", "/install", json_body=body, timeout=timeout)

    # -- authentication ---------------------------------------------------------------------------
    def login(self, username: str, password: str) -> None:
        """Get a bearer token and keep the credentials to log in again when Tracardi answers 401."""
        self._secrets.add(password)
        self._credentials = (username, password)
        self._token = None
        self._login()

    def _login(self) -> None:
        if self._credentials is None:
            raise TracardiApiError("POST", "/user/token", None, "no credentials to log in with")
        username, password = self._credentials
        body = _as_mapping(
            self._call("POST", "/user/token", form_body={"username": username, "password": password}),
            "POST /user/token",
        )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise UnexpectedAnswerError("POST", "/user/token", 200, "no access_token in the answer")
        self._secrets.add(token)
        self._token = token

    # -- migration --------------------------------------------------------------------------------
    def migrations(self) -> list[str]:
        body = self._authorized("GET", "/migrations")
        if not isinstance(body, list):
            raise UnexpectedAnswerError("GET", "/migrations", 200, "not a list")
        return [str(item) for item in body]

    def migration_schemas(self, from_db: str, tenant: str, context: str) -> MigrationListing:
        path = f"/migration/{urllib.parse.quote(from_db)}?" + urllib.parse.urlencode({"from_tenant_name": tenant})
        body = _as_mapping(self._authorized("GET", path, context=context), f"GET {path}")
        schemas = body.get("schemas") or []
        entries = [migration_entry(schema) for schema in schemas if isinstance(schema, Mapping)]
        return MigrationListing(warn=bool(body.get("warn")), entries=tuple(e for e in entries if e is not None))

    def start_migration(self, from_db: str, tenant: str, ids: Sequence[str], context: str) -> str | None:
        """POST /migration: the orchestrator's task id, or None when Tracardi matched no id."""
        body = {"from_version": from_db, "from_tenant_name": tenant, "ids": list(ids)}
        answer = self._authorized("POST", "/migration", json_body=body, context=context, idempotent=False)
        return answer if isinstance(answer, str) and answer else None

    def upgrade_tasks(self, context: str, *, limit: int, query: str | None = None) -> TaskListing:
        """GET /tasks/type/upgrade with an explicit `limit` (Tracardi lists only the 50 newest without
        one) and, optionally, `query` on the task name. Newest first, as Tracardi lists."""
        params = {"limit": str(limit), **({"query": query} if query else {})}
        path = "/tasks/type/upgrade?" + urllib.parse.urlencode(params)
        body = _as_mapping(self._authorized("GET", path, context=context), "GET /tasks/type/upgrade")
        grouped = body.get("grouped")
        documents = 0
        tasks: list[UpgradeTask] = []
        if isinstance(grouped, Mapping):
            for group in grouped.values():
                if isinstance(group, list):
                    documents += len(group)
                    tasks.extend(t for t in (upgrade_task(item) for item in group) if t is not None)
        return TaskListing(tasks=tuple(tasks), complete=documents < limit)

    def task_status(self, task_id: str, context: str) -> TaskStatus:
        path = f"/import/task/{urllib.parse.quote(task_id)}/status"
        body = _as_mapping(self._authorized("GET", path, context=context), f"GET {path}")
        progress = body.get("progress")
        current = total = None
        if isinstance(progress, Mapping):
            current = int_or_none(progress.get("current"))
            total = int_or_none(progress.get("total"))
        return TaskStatus(
            id=str(body.get("id") or task_id),
            status=str(body.get("status") or "PENDING").upper(),
            current=current,
            total=total,
        )

    # -- plumbing ---------------------------------------------------------------------------------
    def _authorized(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        context: str | None = None,
        idempotent: bool = True,
    ) -> Any:
        if self._token is None:
            self._login()
        try:
            return self._call(method, path, json_body=json_body, context=context, idempotent=idempotent)
        except TracardiApiError as error:
            # The token expired (30 min TTL, renewed by every call) or was revoked: log in once more.
            if error.status != 401 or self._credentials is None:
                raise
        self._login()
        return self._call(method, path, json_body=json_body, context=context, idempotent=idempotent)

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        form_body: Mapping[str, str] | None = None,
        context: str | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> Any:
        url = self.base_url.rstrip("/") + path
        headers = {"Accept": "application/json"}
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form_body is not None:
            data = urllib.parse.urlencode(form_body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if context is not None:
            headers["x-context"] = context
        if self._token is not None and path != "/user/token":
            headers["Authorization"] = f"Bearer {self._token}"
        shown = path.split("?", 1)[0]
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:  # noqa: S310
                    return decode(response.read())
            except urllib.error.HTTPError as error:
                status = error.code
                detail = self._detail(status, read_error(error))
                retry = status >= 500 and idempotent
                if not retry or attempt + 1 >= self.retry.attempts:
                    raise TracardiApiError(method, shown, status, detail) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                refused = _refused(error)
                if not (idempotent or refused) or attempt + 1 >= self.retry.attempts:
                    raise ApiUnreachableError(method, shown, _reason(error)) from None
            self.sleep(self.retry.delay(attempt))
            attempt += 1

    def _detail(self, status: int, raw: bytes) -> str:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        detail: object = body.get("detail") if isinstance(body, Mapping) else None
        if status == 422 and isinstance(detail, list):
            detail = "; ".join(
                f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg', '')}"
                for item in detail
                if isinstance(item, Mapping)
            )
        text = detail if isinstance(detail, str) else (raw.decode("utf-8", "replace") if raw else "")
        # Scrub first, then shape: collapsing or cutting first would hide a secret from the scrubbing.
        return one_line(self.scrub(text), _DETAIL_LIMIT)

    def scrub(self, text: str) -> str:
        """`text` with every secret this client has seen, in any spelling, replaced by `***`."""
        return scrub(text, self._secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self._secrets.update(s for s in secrets if s)


def _as_mapping(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        method, _, path = what.partition(" ")
        raise UnexpectedAnswerError(method, path, 200, "not a JSON object")
    return body


def _refused(error: BaseException) -> bool:
    reason = getattr(error, "reason", error)
    return isinstance(reason, ConnectionRefusedError)


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", error)
    if isinstance(reason, socket.timeout | TimeoutError):
        return "timed out"
    return (type(reason).__name__ + (f": {reason}" if str(reason) else ""))[:_DETAIL_LIMIT]
