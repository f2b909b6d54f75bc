"""Shared mode: one simulator process serving many Tracardi containers.

    python -m devenv.simulator shared --socket <path>

A fleet of installations costs four simulator processes each (about 45 MB apiece) in the default mode;
in shared mode the node agent starts this one process per devenv and hands it every simulator
container it runs (`PUT /containers/<id>` on a Unix socket). Each container still gets what its own
process would: its own podIP:port (API and GUI listen there, so probes and Services reach them as
before), its own env read by `Settings.from_env`, its own Elasticsearch client, its own log file, and
the same start-up failures with the same exit codes (2: unknown tag or bad variable; 1: a component
Tracardi would not start, or an address that cannot be bound). A worker is a thread of its own.

Control API (JSON):
- `PUT /containers/<id>` {component, tag, host, port, env, log} → `{"state": "running"}`, or
  `{"state": "exited", "code": N, "message": "..."}` when it would not start (the message is in its log);
- `DELETE /containers/<id>` → stops it as SIGTERM stops the process (servers close, the worker finishes
  its poll), `{"state": "exited", "code": 0}`;
- `GET /containers` → `{id: {"state", "code", "message"}}` for every container it knows.

What differs from separate processes: the containers share one Python interpreter (a bug that kills
the interpreter takes every container with it: the agent then sees all of them exit with 137, as a
node's containers would), and name resolution uses the host's resolv.conf, not each pod's.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from devenv.simulator.api import make_app
from devenv.simulator.es import client
from devenv.simulator.gui import make_gui
from devenv.simulator.settings import Settings, SettingsError, startup_error
from devenv.simulator.versions import UnknownTagError, version_for_tag
from devenv.simulator.worker import Worker

log = logging.getLogger("simulator.shared")

# Which container the code running now belongs to: its log records go to that container's file.
CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("simulator_container", default=None)

COMPONENTS = ("api", "worker", "gui")
EXECUTOR_THREADS = 64  # the API's Elasticsearch calls run in threads; every container shares these
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RoutingHandler(logging.Handler):
    """Writes a record to the log file of the container it was emitted for (CURRENT), else to `fallback`."""

    def __init__(self, files: dict[str, IO[str]], fallback: logging.Handler) -> None:
        super().__init__()
        self.files = files
        self.fallback = fallback
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        cid = CURRENT.get()
        out = self.files.get(cid) if cid is not None else None
        if out is None:
            self.fallback.handle(record)
            return
        try:
            out.write(self.format(record) + "\n")
            out.flush()
        except (OSError, ValueError):
            self.handleError(record)


@dataclass
class Served:
    """One container this process serves."""

    id: str
    component: str
    out: IO[str]
    runner: web.AppRunner | None = None
    worker: Worker | None = None
    thread: threading.Thread | None = None
    code: int | None = None  # None while it runs
    message: str = ""

    def state(self) -> dict[str, Any]:
        if self.thread is not None and self.code is None and not self.thread.is_alive():
            self.code = 0 if self.worker is not None and self.worker.stopping.is_set() else 1
        if self.code is None:
            return {"state": "running"}
        return {"state": "exited", "code": self.code, "message": self.message}


@dataclass
class Shared:
    served: dict[str, Served] = field(default_factory=dict)
    files: dict[str, IO[str]] = field(default_factory=dict)

    def _exited(self, s: Served, code: int, message: str) -> dict[str, Any]:
        s.code, s.message = code, message
        s.out.write(message + "\n")
        s.out.flush()
        return s.state()

    async def start(self, cid: str, spec: dict[str, Any]) -> dict[str, Any]:
        if cid in self.served:
            await self.stop(cid)
        component = str(spec.get("component"))
        if component not in COMPONENTS:
            raise web.HTTPBadRequest(text=f"component must be one of {COMPONENTS}, not {component!r}")
        env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
        out = open(Path(str(spec["log"])), "a", buffering=1)  # noqa: SIM115 - closed in stop()
        s = self.served[cid] = Served(cid, component, out)
        self.files[cid] = out
        token = CURRENT.set(cid)
        try:
            return await self._start(s, spec, env)
        finally:
            CURRENT.reset(token)

    async def _start(self, s: Served, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        tag, host, port = str(spec.get("tag")), str(spec.get("host")), int(spec.get("port") or 80)
        try:
            version = version_for_tag(tag)
            settings = Settings.from_env(version, env)
        except (UnknownTagError, SettingsError) as e:
            return self._exited(s, 2, str(e))
        crash = startup_error(settings) if s.component != "gui" else None
        if crash is not None:
            return self._exited(s, 1, crash)
        if s.component == "worker":
            s.worker = Worker(settings, name=f"celery@{env.get('HOSTNAME', host)}")
            s.thread = threading.Thread(target=self._work, args=(s,), name=f"worker-{s.id}", daemon=True)
            s.thread.start()
            return s.state()
        if s.component == "gui":
            app = make_gui(version, tag, api_url=env.get("API_URL", ""))
        else:
            logging.getLogger("tracardi.api").info(
                "Tracardi %s API (db %s, tenant %s, production=%s) on %s:%s", version.version,
                version.db_version, settings.namespace.tenant, settings.production, host, port)
            app = make_app(settings, client(settings))
        app.middlewares.insert(0, _belongs_to(s.id))
        s.runner = web.AppRunner(app, access_log=None)
        await s.runner.setup()
        try:
            await web.TCPSite(s.runner, host, port).start()
        except OSError as e:
            await s.runner.cleanup()
            s.runner = None
            return self._exited(s, 1, f"cannot listen on {host}:{port}: {e}")
        return s.state()

    def _work(self, s: Served) -> None:
        assert s.worker is not None
        CURRENT.set(s.id)
        try:
            s.worker.run_forever()
        except Exception as e:  # the process would have died with this traceback
            logging.getLogger("tracardi.worker").exception("worker crashed")
            s.code, s.message = 1, f"worker crashed: {e}"

    async def stop(self, cid: str) -> dict[str, Any]:
        s = self.served.get(cid)
        if s is None:
            return {"state": "exited", "code": 0, "message": ""}
        if s.runner is not None:
            await s.runner.cleanup()
            s.runner = None
        if s.worker is not None and s.thread is not None:
            s.worker.stopping.set()
            await asyncio.get_running_loop().run_in_executor(None, s.thread.join, 30)
        if s.code is None:
            s.code = 0
        state = s.state()
        del self.served[cid]
        out = self.files.pop(cid, None)
        if out is not None:
            out.close()
        return state

    async def stop_all(self) -> None:
        for cid in list(self.served):
            await self.stop(cid)


def _belongs_to(cid: str) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        token = CURRENT.set(cid)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            CURRENT.reset(token)

    return middleware


def control_app(shared: Shared) -> web.Application:
    async def put(request: web.Request) -> web.Response:
        spec = await request.json()
        if not isinstance(spec, dict):
            raise web.HTTPBadRequest(text="a JSON object expected")
        return web.json_response(await shared.start(request.match_info["id"], spec))

    async def delete(request: web.Request) -> web.Response:
        return web.json_response(await shared.stop(request.match_info["id"]))

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({cid: s.state() for cid, s in shared.served.items()})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_put("/containers/{id}", put)
    app.router.add_delete("/containers/{id}", delete)
    app.router.add_get("/containers", listing)

    async def on_cleanup(_app: web.Application) -> None:
        await shared.stop_all()

    app.on_cleanup.append(on_cleanup)
    return app


def serve(socket_path: Path) -> None:
    """Serve the control API on `socket_path` until SIGTERM/SIGINT; then stop every container."""
    fallback = logging.StreamHandler()
    fallback.setFormatter(logging.Formatter(FORMAT))
    shared = Shared()
    root = logging.getLogger()
    root.handlers[:] = [RoutingHandler(shared.files, fallback)]
    socket_path.unlink(missing_ok=True)

    async def on_startup(_app: web.Application) -> None:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="es"))
        log.info("shared simulator serving on %s", socket_path)

    app = control_app(shared)
    app.on_startup.append(on_startup)
    web.run_app(app, path=str(socket_path), print=None, access_log=None)
