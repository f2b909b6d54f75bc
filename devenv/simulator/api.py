"""The simulated `tracardi/tracardi-api`: an aiohttp app with Tracardi's endpoints, shapes and quirks.

docs/tracardi.md §4, §5, §8 and §9. Elasticsearch and Redis calls run in threads (both clients are
synchronous); tokens live in Redis (auth.py).
Middlewares, outermost first: fault `slow`, fault `http-500`, x-context, FastAPI-like error bodies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from elasticsearch import Elasticsearch, TransportError

from devenv.simulator import install as installer
from devenv.simulator import validation
from devenv.simulator.auth import RedisError, Session, TokenStore
from devenv.simulator.es import existing_indices
from devenv.simulator.mappings import Json
from devenv.simulator.migration import ListingOptions, list_migration, step_for
from devenv.simulator.naming import CONTEXTS, Context, Namespace, md5_tenant
from devenv.simulator.settings import Settings
from devenv.simulator.tasks import DEFAULT_LIMIT, TaskStore, orchestrator_doc, queue_name

log = logging.getLogger("tracardi.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SETTINGS = web.AppKey("settings", Settings)
ES = web.AppKey("es", Elasticsearch)
TOKENS = web.AppKey("tokens", TokenStore)
INSTANCE = web.AppKey("instance", str)
RANDOM = web.AppKey("random", random.Random)

MIGRATION_ROLES = ("admin", "developer", "maintainer")
TASK_ROLES = ("admin", "developer")


class HTTPError(Exception):
    """An answer `{"detail": ...}` with a status, as FastAPI's HTTPException gives."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json", headers=headers)


def missing_fields(request: web.Request, where: str, names: list[str], given: Any) -> HTTPError:
    db = request.app[SETTINGS].version.db_version
    return HTTPError(422, [validation.missing(db, [where, n], given) for n in names])


def today() -> dt.date:
    return dt.date.today()


# --- middlewares -------------------------------------------------------------------------------------

@web.middleware
async def slow_fault(request: web.Request, handler: Handler) -> web.StreamResponse:
    delay = request.app[SETTINGS].faults.slow_seconds
    if delay:
        await asyncio.sleep(delay)
    return await handler(request)


@web.middleware
async def http_500_fault(request: web.Request, handler: Handler) -> web.StreamResponse:
    p = request.app[SETTINGS].faults.http_500
    if p and request.path != "/healthcheck" and request.app[RANDOM].random() < p:
        return json_response({"detail": "Simulated fault (TRACARDI_SIM_FAULTS=http-500)"}, 500)
    return await handler(request)


def request_context(request: web.Request) -> Context:
    """x-context is honoured only when the API runs with PRODUCTION other than yes; default staging."""
    settings = request.app[SETTINGS]
    if settings.production:
        return "production"
    wanted = request.headers.get("x-context", "").strip().lower()
    return "production" if wanted == "production" else "staging"


@web.middleware
async def context_header(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers["X-Context"] = request_context(request)
    return response


@web.middleware
async def error_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HTTPError as e:
        return json_response({"detail": e.detail}, e.status, e.headers)
    except web.HTTPNotFound:
        return json_response({"detail": "Not Found"}, 404)
    except web.HTTPMethodNotAllowed:
        return json_response({"detail": "Method Not Allowed"}, 405)
    except Exception as e:
        log.exception("uncaught error on %s %s", request.method, request.path)
        return json_response({"detail": str(e)}, 500)


# --- helpers -----------------------------------------------------------------------------------------

async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def authorise(request: web.Request, roles: tuple[str, ...] = ()) -> Session:
    settings = request.app[SETTINGS]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPError(401, "Not authenticated", {"WWW-Authenticate": "Bearer"})
    if not settings.expose_gui_api:
        raise HTTPError(403, "Access forbidden")
    session: Session | None = await in_thread(request.app[TOKENS].check, token.strip())  # RedisError: 500
    if session is None or (roles and not set(roles) & set(session.roles)):
        raise HTTPError(401, "Invalid authentication credentials", {"WWW-Authenticate": "Bearer"})
    return session


async def json_body(request: web.Request) -> Json:
    db = request.app[SETTINGS].version.db_version
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPError(422, [validation.not_a_dict(db, ["body"], None)]) from None
    if not isinstance(body, dict):
        raise HTTPError(422, [validation.not_a_dict(db, ["body"], body)])
    return body


# --- endpoints ---------------------------------------------------------------------------------------

async def healthcheck(request: web.Request) -> web.Response:
    return json_response("")


async def version_details(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    version = settings.version
    # 0.8.1 reports the version it upgrades from; 0.8.0 and 0.8.2.x report none (docs/tracardi.md §9).
    upgrades = list(version.migration_sources) if version.db_version == "08x" else []
    body: Json = {"version": version.version, "name": settings.namespace.tenant, "upgrades": upgrades,
                  "production": settings.production, "config": {}}
    if version.reports_db_version:
        body["db_version"] = version.db_version
        body["instance"] = request.app[INSTANCE]
    if version.db_version in ("0820", "082x"):
        try:
            status = await in_thread(installer.install_status, request.app[ES], settings, today())
            schema, users = status.schema_ok, status.admin_ok
        except TransportError:
            schema = users = False
        body["installed"] = {"schema": schema, "users": users, "form": schema}
    body.update({"owner": "Tracardi", "expires": "Never", "licenses": []})
    return json_response(body)


async def get_install(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    status = await in_thread(installer.install_status, request.app[ES], settings, today())
    # A production-mode API looks for the admin in the production context, where there is none (§9).
    admin_ok = status.admin_ok and not (settings.production and not settings.expose_gui_api)
    body: Json = {"schema_ok": status.schema_ok, "admin_ok": admin_ok}
    if settings.version.db_version != "080":
        body.update({"form_ok": status.schema_ok, "warning": None})
    return json_response(body)


async def post_install(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await json_body(request)
    missing = [f for f in ("username", "password", "token", "needs_admin") if f not in body]
    if missing:
        raise missing_fields(request, "body", missing, body)
    if body["token"] != settings.installation_token:
        raise HTTPError(403, "Installation forbidden. Invalid installation token.")
    admin: tuple[str, str] | None = None
    if body["needs_admin"]:
        username, password = str(body["username"] or ""), str(body["password"] or "")
        if not installer.admin_credentials_ok(username, password):
            raise HTTPError(403, "Installation forbidden. Invalid admin account login or password.")
        admin = (username, password)
    result = await in_thread(installer.apply_install, request.app[ES], settings, admin, today())
    return json_response(result)


def _login_error(settings: Settings, message: str) -> HTTPError:
    """Every login failure, per version: 0.8.0 400, 0.8.1 500, 0.8.2.x 400 with a Redis prefix (§9)."""
    db = settings.version.db_version
    if db in ("0820", "082x"):
        return HTTPError(400, f"Redis authentication error: {message}")
    return HTTPError(400 if db == "080" else 500, message)


def _find_user(es: Elasticsearch, settings: Settings, username: str) -> Json | None:
    index = settings.namespace.index(settings.version.resource("user"), "staging")
    hits = es.search(index=index, body={"query": {"term": {"email": username}}, "size": 1})["hits"]["hits"]
    return dict(hits[0]["_source"]) if hits else None


async def user_token(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not settings.expose_gui_api:
        raise HTTPError(403, "Access forbidden")
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise missing_fields(request, "body", ["username", "password"], None)
    form = await request.post()
    missing = [f for f in ("username", "password") if not isinstance(form.get(f), str)]
    if missing:
        raise missing_fields(request, "body", missing, None)
    username, password = str(form["username"]), str(form["password"])
    try:
        user = await in_thread(_find_user, request.app[ES], settings, username)
    except TransportError:
        raise _login_error(settings, "System not installed.") from None
    if user is None or user.get("disabled") or user.get("password") != installer.password_hash(password):
        raise _login_error(settings, "Incorrect username or password.")
    roles = list(user.get("roles") or [])
    try:
        token = await in_thread(request.app[TOKENS].issue, username, roles)
    except RedisError as e:
        raise _login_error(settings, str(e)) from None
    return json_response({"access_token": token, "token_type": "bearer", "roles": roles, "preference": {}})


async def migrations(request: web.Request) -> web.Response:
    await authorise(request)
    return json_response(list(request.app[SETTINGS].version.migration_sources))


def _warn(request: web.Request, schemas: list[Json]) -> bool:
    """Tracardi warns whenever a destination already holds documents (after an install, it always does)."""
    ns = request.app[SETTINGS].namespace
    existing = set(existing_indices(request.app[ES], f"*{ns.db}.{ns.tenant}.*"))
    targets = sorted({s["copy_index"]["to_index"] for s in schemas} & existing)
    if not targets:
        return False
    return int(request.app[ES].count(index=",".join(targets), ignore_unavailable=True)["count"]) > 0


def _schemas(request: web.Request, from_db: str, from_tenant: str | None) -> list[Json]:
    """The listing for this request: 0.8.0/0.8.1 list both contexts, 0.8.2 follows x-context."""
    settings = request.app[SETTINGS]
    version = settings.version
    step = step_for(from_db, version.db_version)
    if step is None:
        raise HTTPError(404, f"Migration from version {from_db} to {version.db_version} is not available.")
    source = Namespace(from_db, from_tenant or md5_tenant(from_db))
    contexts: tuple[Context, ...] = (
        (request_context(request),) if version.db_version in ("0820", "082x") else CONTEXTS
    )
    existing = existing_indices(request.app[ES], f"*{source.db}.{source.tenant}.*")
    options = ListingOptions(faithful_082=settings.migration_mode == "faithful",
                             skip_partitioned=settings.faults.migration_skips_partitioned)
    return list_migration(step, source, settings.namespace, contexts, existing, options, settings.env, today())


async def migration_listing(request: web.Request) -> web.Response:
    await authorise(request)
    from_db = request.match_info["from_db"]
    tenant = request.query.get("from_tenant_name") or None
    schemas = await in_thread(_schemas, request, from_db, tenant)
    warn = await in_thread(_warn, request, schemas)
    return json_response({"warn": warn, "schemas": schemas})


def _start_migration(request: web.Request, from_db: str, tenant: str | None, ids: list[str]) -> str | None:
    schemas = [s for s in _schemas(request, from_db, tenant) if s["id"] in set(ids)]
    if not schemas:
        return None
    settings = request.app[SETTINGS]
    context = request_context(request)
    celery_id = str(uuid.uuid4())
    store = TaskStore(request.app[ES], settings.version, settings.namespace)
    store.put(context, orchestrator_doc(celery_id, schemas, from_db, tenant, context,
                                        queue_name(settings.namespace)))
    return celery_id


async def start_migration(request: web.Request) -> web.Response:
    await authorise(request, MIGRATION_ROLES)
    body = await json_body(request)
    missing = [f for f in ("from_version", "ids") if f not in body]
    if missing:
        raise missing_fields(request, "body", missing, body)
    if not isinstance(body["ids"], list):
        db = request.app[SETTINGS].version.db_version
        raise HTTPError(422, [validation.not_a_list(db, ["body", "ids"], body["ids"])])
    tenant = body.get("from_tenant_name")
    celery_id = await in_thread(_start_migration, request, str(body["from_version"]),
                                str(tenant) if tenant else None, [str(i) for i in body["ids"]])
    return json_response(celery_id)


async def tasks_by_type(request: web.Request) -> web.Response:
    """`?limit=` (default 50) and `?query=` (part of the name), newest first (docs/tracardi.md §9)."""
    await authorise(request, TASK_ROLES)
    settings = request.app[SETTINGS]
    raw_limit = request.query.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise HTTPError(422, [validation.not_an_int(settings.version.db_version, ["query", "limit"],
                                                    raw_limit)]) from None
    store = TaskStore(request.app[ES], settings.version, settings.namespace)
    tasks = await in_thread(store.list_tasks, request_context(request), request.match_info["type"],
                            max(0, limit), request.query.get("query") or None)
    return json_response({"grouped": {"Tasks": tasks}})


async def task_status(request: web.Request) -> web.Response:
    await authorise(request)
    settings = request.app[SETTINGS]
    celery_id = request.match_info["id"]
    store = TaskStore(request.app[ES], settings.version, settings.namespace)
    state = await in_thread(store.celery_state, celery_id)
    # Celery answers PENDING for an id it does not know.
    status = "PENDING" if state is None else str(state.get("state", "PENDING"))
    if status in ("PENDING", "STARTED"):
        status, progress = "PENDING", None
    elif status == "PROGRESS":
        progress = {"current": int(state.get("current") or 0), "total": int(state.get("total") or 0)} \
            if state else None
    elif status == "SUCCESS":
        progress = None  # a finished copy has no progress left (docs/tracardi.md §9)
    else:
        progress = {}
    return json_response({"id": celery_id, "status": status, "progress": progress})


def make_app(settings: Settings, es: Elasticsearch, rng: random.Random | None = None) -> web.Application:
    app = web.Application(middlewares=[slow_fault, http_500_fault, context_header, error_bodies])
    app[SETTINGS] = settings
    app[ES] = es
    app[TOKENS] = TokenStore.on_redis(f"{settings.namespace.db}.{settings.namespace.tenant}", settings.token_ttl,
                                      settings.redis)
    app[INSTANCE] = str(uuid.uuid4())
    app[RANDOM] = rng or random.Random()
    r = app.router
    r.add_get("/healthcheck", healthcheck)
    r.add_get("/info/version/details", version_details)
    if settings.version.db_version in ("0820", "082x"):
        r.add_get("/", version_details)
    r.add_get("/install", get_install)
    r.add_post("/install", post_install)
    r.add_post("/user/token", user_token)
    r.add_get("/migrations", migrations)
    r.add_get("/migration/{from_db}", migration_listing)
    r.add_post("/migration", start_migration)
    r.add_get("/tasks/type/{type}", tasks_by_type)
    r.add_get("/import/task/{id}/status", task_status)
    return app
