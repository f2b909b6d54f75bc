"""The Tracardi simulator against a real Elasticsearch: API and worker as real processes, driven over HTTP.

Elasticsearch and Redis: those of this test session's devenv. Every test works in tenants of its own
(TENANT_NAME) and deletes their indices and templates afterwards.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, NotFoundError

from devenv import lifecycle
from devenv.nodeagent import runtime
from devenv.nodeagent.shared import SharedContainer, SharedSimulator
from devenv.paths import State
from devenv.procs import free_port, port_open
from devenv.seed import SeedCounts, seed
from devenv.simulator.es import connect, existing_aliases, existing_indices, existing_templates
from devenv.simulator.naming import Namespace, expected_index_set
from devenv.simulator.tasks import ORCHESTRATOR_NAME
from devenv.simulator.versions import V08X, V080, V0820, version_for_tag

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ADMIN: dict[str, Any] = {"username": "admin@example.com", "password": "secret", "token": "tok", "needs_admin": True,
         "update_mapping": False}
SMALL = SeedCounts(profiles=9, events=18, sessions=6, logs=4, user_logs=3, items=3, entities=4, console_logs=3,
                   config=2, months=3)


# --- Elasticsearch -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def es_url(devenv: Any) -> str:
    """The Elasticsearch of this test session's devenv."""
    return str(devenv.elasticsearch_url)


@pytest.fixture(scope="session")
def redis_url(devenv: Any) -> str:
    """The Redis of this test session's devenv (`redis://127.0.0.1:<port>`, never port 6379)."""
    return lifecycle.read_env(State.default())["REDIS_URL"]


@pytest.fixture(scope="session")
def es(es_url: str) -> Iterator[Elasticsearch]:
    client = connect([es_url])
    yield client
    client.close()


@pytest.fixture
def tenants(es: Elasticsearch) -> Iterator[Callable[[str], str]]:
    """Unique tenant names for this test; their indices and templates are deleted afterwards."""
    made: list[str] = []

    def make(label: str) -> str:
        name = f"{label}{uuid.uuid4().hex[:6]}"
        made.append(name)
        return name

    yield make
    for tenant in made:
        names = existing_indices(es, f"*.{tenant}.*")
        for start in range(0, len(names), 40):
            try:
                es.indices.delete(index=",".join(names[start:start + 40]), ignore_unavailable=True)
            except NotFoundError:  # one went away meanwhile: delete the rest one by one
                for name in names[start:start + 40]:
                    es.indices.delete(index=name, ignore=[404])
        for template in existing_templates(es, f"*template.*.{tenant}.*"):
            es.indices.delete_index_template(name=template)


# --- simulator processes and HTTP -------------------------------------------------------------------

_ADDRESSES = itertools.count(10)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Api:
    url: str
    token: str | None = None
    context: str | None = None

    def call(self, method: str, path: str, json_body: Any = None, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, auth: bool = True) -> Answer:
        h = dict(headers or {})
        data = None
        if json_body is not None:
            data, h["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        if auth and self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        if self.context:
            h.setdefault("x-context", self.context)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return Answer(r.status, json.loads(r.read() or b"null"), dict(r.headers))
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
            return Answer(e.code, body, dict(e.headers))

    def login(self, username: str = "admin@example.com", password: str = "secret") -> str:
        a = self.call("POST", "/user/token", form={"username": username, "password": password}, auth=False)
        assert a.status == 200, a
        self.token = a.body["access_token"]
        return str(self.token)

    def install(self) -> None:
        a = self.call("POST", "/install", ADMIN)
        assert a.status == 200, a
        assert self.call("GET", "/install").body["schema_ok"] is True


@dataclass
class Sims:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    es_url: str = ""
    redis_url: str = ""
    shared: SharedSimulator | None = None  # set: every container runs in this one shared process
    handles: list[SharedContainer] = field(default_factory=list)

    def env(self, tenant: str, extra: dict[str, str] | None) -> dict[str, str]:
        drop = ("TRACARDI_SIM_", "TENANT_NAME", "REDIS_", "PERFORMANCE_TRACKING")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update({"ELASTIC_HOST": self.es_url, "TENANT_NAME": tenant, "INSTALLATION_TOKEN": "tok",
                    "PRODUCTION": "no", "EXPOSE_GUI_API": "yes", "TRACARDI_SIM_POLL": "0.2",
                    "REDIS_HOST": self.redis_url, "REDIS_PORT": self.redis_url.rsplit(":", 1)[1]})
        env.update(extra or {})
        return env

    def start(self, component: str, tag: str, tenant: str, extra: dict[str, str] | None = None) -> Api:
        ip = f"127.0.{os.getpid() % 200 + 20}.{next(_ADDRESSES) % 250 + 2}"
        port = free_port(ip)
        if self.shared is not None:
            return self._start_shared(component, tag, tenant, extra, ip, port)
        proc = subprocess.Popen(
            [sys.executable, "-m", "devenv.simulator", component, "--tag", tag, "--host", ip, "--port", str(port)],
            cwd=REPO, env=self.env(tenant, extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        api = Api(f"http://{ip}:{port}")
        if component == "worker":
            return api
        deadline = time.monotonic() + 30
        while not port_open(ip, port):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, f"{component} {tag} did not listen"
            time.sleep(0.1)
        return api

    def _start_shared(self, component: str, tag: str, tenant: str, extra: dict[str, str] | None, ip: str,
                      port: int) -> Api:
        assert self.shared is not None
        log_path = self.shared.pods_dir / f"{component}-{ip}-{port}.log"
        spec = {"component": component, "tag": tag, "host": ip, "port": port, "env": self.env(tenant, extra)}
        handle = self.shared.start(uuid.uuid4().hex, spec, log_path, "test", f"{component} {tag}")
        self.handles.append(handle)
        assert handle.exit_code() is None, log_path.read_text()
        deadline = time.monotonic() + 30
        while component != "worker" and not port_open(ip, port):
            assert time.monotonic() < deadline, f"{component} {tag} did not listen"
            time.sleep(0.1)
        return Api(f"http://{ip}:{port}")

    def stop_all(self) -> None:
        for h in self.handles:
            h.signal_stop()
        for h in self.handles:
            h.finish_stop(time.monotonic() + 10)
            h.cleanup()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()


@pytest.fixture
def sims(es_url: str, redis_url: str, tenants: Callable[[str], str]) -> Iterator[Sims]:
    """Simulator processes, stopped before the tenants' indices are deleted."""
    s = Sims(es_url=es_url, redis_url=redis_url)
    yield s
    s.stop_all()


def count(es: Elasticsearch, index: str) -> int:
    es.indices.refresh(index=index, ignore_unavailable=True)
    return int(es.count(index=index, ignore_unavailable=True)["count"])


def copy_tasks(api: Api, source: str) -> list[dict[str, Any]]:
    """The copy tasks of the migration from `source` (`<db>.<tenant>`), newest first: without the
    orchestrators, and without the tasks a migration carried over from an older version."""
    tasks = api.call("GET", "/tasks/type/upgrade?limit=1000").body["grouped"]["Tasks"]
    return [t for t in tasks if t["name"] != ORCHESTRATOR_NAME
            and t["params"]["copy_index"]["from_index"].removeprefix("prod-").startswith(f"{source}.")]


def wait_tasks(api: Api, expected: int, source: str, timeout: float = 120) -> dict[str, str]:
    """Wait until GET /tasks/type/upgrade lists `expected` copies from `source`, each in a final state."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = copy_tasks(api, source)
        states = {t["task_id"]: api.call("GET", f"/import/task/{t['task_id']}/status").body["status"]
                  for t in tasks}
        if len(tasks) >= expected and all(s in ("SUCCESS", "FAILURE") for s in states.values()):
            assert len(tasks) == expected
            return states
        assert time.monotonic() < deadline, f"{len(tasks)}/{expected} tasks: {states}"
        time.sleep(0.5)


def migrate(api: Api, from_db: str, from_tenant: str) -> tuple[str, list[dict[str, Any]]]:
    listing = api.call("GET", f"/migration/{from_db}?from_tenant_name={from_tenant}")
    assert listing.status == 200, listing
    schemas = listing.body["schemas"]
    assert listing.body["warn"] is bool(schemas)  # the installed destination already holds documents
    started = api.call("POST", "/migration", {"from_version": from_db, "from_tenant_name": from_tenant,
                                              "ids": [s["id"] for s in schemas]})
    assert started.status == 200, started
    assert isinstance(started.body, str), started
    return started.body, schemas


# --- tests -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["0.8.0", "0.8.1", "0.8.2.1"])
def test_version_details(sims: Sims, tenants: Callable[[str], str], tag: str) -> None:
    tenant = tenants("v")
    api = sims.start("api", tag, tenant)
    assert api.call("GET", "/healthcheck").body == ""
    d = api.call("GET", "/info/version/details")
    assert d.status == 200
    assert d.headers["X-Context"] == "staging"
    v = version_for_tag(tag)
    assert (d.body["version"], d.body["name"], d.body["production"]) == (v.version, tenant, False)
    assert ("db_version" in d.body) == (tag != "0.8.0")
    assert ("instance" in d.body) == (tag != "0.8.0")
    assert ("installed" in d.body) == (tag == "0.8.2.1")
    assert d.body["upgrades"] == (["080"] if tag == "0.8.1" else [])
    root = api.call("GET", "/")
    if tag == "0.8.2.1":
        assert root.body["db_version"] == "0820"
        assert d.body["installed"] == {"schema": False, "users": False, "form": False}
    else:
        assert root.status == 404


def test_default_tenant_and_unknown_tag(sims: Sims, es_url: str) -> None:
    api = sims.start("api", "0.8.1", "")
    assert api.call("GET", "/info/version/details").body["name"] == "01506"
    bad = subprocess.run([sys.executable, "-m", "devenv.simulator", "api", "--tag", "9.9.9", "--port", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "9.9.9" in bad.stderr


@pytest.mark.parametrize("tag", ["0.8.0", "0.8.1", "0.8.2.1"])
def test_install_creates_exactly_the_index_set(
    sims: Sims, es: Elasticsearch, tenants: Callable[[str], str], tag: str
) -> None:
    tenant = tenants("i")
    version = version_for_tag(tag)
    ns = Namespace(version.db_version, tenant)
    api = sims.start("api", tag, tenant)
    assert api.call("GET", "/install").body["schema_ok"] is False
    wrong = api.call("POST", "/install", {**ADMIN, "token": "nope"})
    assert wrong.status == 403
    assert wrong.body == {"detail": "Installation forbidden. Invalid installation token."}
    assert existing_indices(es, f"*.{tenant}.*") == []
    assert existing_templates(es, f"*.{tenant}.*") == []
    assert api.call("POST", "/install", {"username": "a@b.co"}).status == 422
    assert api.call("POST", "/install", {**ADMIN, "username": "not-an-email"}).status == 403

    answer = api.call("POST", "/install", ADMIN)
    assert answer.status == 200
    assert len(answer.body) == 2
    assert all(c["admin"] for c in answer.body)
    status = api.call("GET", "/install").body
    assert status["schema_ok"]
    assert status["admin_ok"]
    assert ("form_ok" in status) == (tag != "0.8.0")

    expected = expected_index_set(version, ns, {}, dt.date.today())
    assert existing_indices(es, f"*.{tenant}.*") == sorted(expected.indices)
    assert existing_templates(es, f"*.{tenant}.*") == sorted(expected.templates)
    assert existing_aliases(es, expected.aliases) == set(expected.aliases)
    for index, body in es.indices.get_mapping(index=f"*.{tenant}.*").items():
        assert body["mappings"]["_meta"] == {"version": version.db_version, "name": tenant}, index
    assert count(es, ns.index(version.resource("user"), "staging")) == 1
    assert count(es, ns.index(version.resource("event-source"), "production")) >= 1

    again = api.call("POST", "/install", ADMIN)
    assert again.status == 200
    assert existing_indices(es, f"*.{tenant}.*") == sorted(expected.indices)
    if tag == "0.8.2.1":
        assert api.call("GET", "/").body["installed"] == {"schema": True, "users": True, "form": True}


@pytest.mark.parametrize(("tag", "status", "detail"), [
    ("0.8.0", 400, "Incorrect username or password."),
    ("0.8.1", 500, "Incorrect username or password."),
    ("0.8.2.1", 400, "Redis authentication error: Incorrect username or password."),
])
def test_token_and_auth_errors(sims: Sims, tenants: Callable[[str], str], tag: str, status: int,
                               detail: str) -> None:
    tenant = tenants("a")
    api = sims.start("api", tag, tenant, {"TRACARDI_SIM_TOKEN_TTL": "3"})
    api.install()
    bad = api.call("POST", "/user/token", form={"username": ADMIN["username"], "password": "wrong"})
    assert (bad.status, bad.body) == (status, {"detail": detail})
    as_json = api.call("POST", "/user/token", {"username": "x", "password": "y"})
    assert as_json.status == 422
    if tag == "0.8.2.1":  # pydantic v2
        assert as_json.body["detail"][0] == {"type": "missing", "loc": ["body", "username"], "msg": "Field required",
                                             "input": None, "url": "https://errors.pydantic.dev/2.5/v/missing"}
    else:
        assert as_json.body["detail"][0]["msg"] == "field required"
    assert api.call("GET", "/migrations").body == {"detail": "Not authenticated"}
    assert api.call("GET", "/migrations").status == 401
    invalid = api.call("GET", "/migrations", headers={"Authorization": "Bearer " + "0" * 40})
    assert (invalid.status, invalid.body) == (401, {"detail": "Invalid authentication credentials"})
    token = api.login()
    assert len(token) == 40
    assert api.login() == token
    restarted = sims.start("api", tag, tenant, {"TRACARDI_SIM_TOKEN_TTL": "3"})  # tokens live in Redis
    assert restarted.call("GET", "/migrations", headers={"Authorization": f"Bearer {token}"}).status == 200
    ok = api.call("GET", "/migrations", headers={"x-context": "production"})
    assert ok.status == 200
    assert ok.body == list(version_for_tag(tag).migration_sources)
    assert ok.headers["X-Context"] == "production"
    for _ in range(3):  # every authorised call renews the TTL
        time.sleep(1.5)
        assert api.call("GET", "/migrations").status == 200
    time.sleep(3.5)
    assert api.call("GET", "/migrations").status == 401

    hidden = sims.start("api", tag, tenant, {"EXPOSE_GUI_API": "no", "PRODUCTION": "yes"})
    assert hidden.call("POST", "/user/token", form={"username": "a", "password": "b"}).status == 403
    forbidden = hidden.call("GET", "/migrations", headers={"Authorization": f"Bearer {token}"})
    assert (forbidden.status, forbidden.body) == (403, {"detail": "Access forbidden"})
    assert hidden.call("GET", "/healthcheck", headers={"x-context": "staging"}).headers["X-Context"] == "production"
    # A production-mode API does not see the admin (docs/tracardi.md §9): install talks to the GUI API.
    assert hidden.call("GET", "/install").body["admin_ok"] is False
    assert api.call("GET", "/install").body["admin_ok"] is True


@pytest.mark.parametrize(("tag", "status", "prefix"), [
    ("0.8.0", 200, None),
    ("0.8.1", 500, ""),
    ("0.8.2.1", 400, "Redis authentication error: "),
])
def test_login_with_redis_on_another_port_needs_redis_port(
    sims: Sims, tenants: Callable[[str], str], redis_url: str, tag: str, status: int, prefix: str | None
) -> None:
    """0.8.0 connects to REDIS_HOST's URL; 0.8.1 and 0.8.2.x take the port from REDIS_PORT (default 6379)."""
    tenant = tenants("r")
    host = urllib.parse.urlsplit(redis_url).hostname
    assert not redis_url.endswith(":6379")
    if port_open(str(host), 6379):  # a system Redis on 6379 would answer: aim at an address it does not bind
        host = "127.0.0.2"
        redis_url = redis_url.replace("127.0.0.1", host)
    sims.start("api", tag, tenant).install()
    url_only = sims.start("api", tag, tenant, {"REDIS_HOST": redis_url, "REDIS_PORT": ""})
    a = url_only.call("POST", "/user/token", form={"username": ADMIN["username"], "password": ADMIN["password"]})
    if prefix is None:
        assert a.status == 200, a
        return
    refused = f"{prefix}Error 111 connecting to {host}:6379. Connection refused."
    assert (a.status, a.body) == (status, {"detail": refused})
    wrong_password = sims.start("api", tag, tenant, {"REDIS_PASSWORD": "nope"})
    b = wrong_password.call("POST", "/user/token", form={"username": ADMIN["username"], "password": "secret"})
    assert b.status == status
    assert b.body["detail"].startswith(prefix)


def test_performance_tracking_no_stops_082_at_start_up(sims: Sims, tenants: Callable[[str], str],
                                                      es_url: str) -> None:
    tenant = tenants("s")
    for component in ("api", "worker"):
        run = subprocess.run(
            [sys.executable, "-m", "devenv.simulator", component, "--tag", "0.8.2.1", "--port", "1"],
            cwd=REPO, env=sims.env(tenant, {"PERFORMANCE_TRACKING": "no"}), capture_output=True, text=True,
            timeout=60, check=False)
        assert run.returncode == 1, run
        assert len(run.stderr.strip().splitlines()) == 1
        assert "Unsupported scheme" in run.stderr
    for tag in ("0.8.0", "0.8.1"):  # they read yes/no
        assert sims.start("api", tag, tenant, {"PERFORMANCE_TRACKING": "no"}).call("GET", "/healthcheck").status == 200


def _install_and_seed_080(sims: Sims, es: Elasticsearch, tenant: str) -> dict[str, int]:
    sims.start("api", "0.8.0", tenant).install()
    report = seed(es, V080, tenant, SMALL, rng_seed=3)
    return dict(report.counts)


def test_080_to_08x_with_and_without_worker(sims: Sims, es: Elasticsearch, tenants: Callable[[str], str]) -> None:
    old, new = tenants("o"), tenants("n")
    seeded = _install_and_seed_080(sims, es, old)
    api = sims.start("api", "0.8.1", new)
    api.install()
    api.login()
    assert api.call("GET", "/migration/0820").status == 404
    assert api.call("GET", "/migration/080").body["schemas"] == []  # the default tenant is 31b7b, not fa73a
    celery_id, schemas = migrate(api, "080", old)
    # 0.8.1 ignores x-context: one listing, both contexts
    assert {s["copy_index"]["production"] for s in schemas} == {True, False}
    assert {s["copy_index"]["from_index"] for s in schemas} >= set(seeded)

    time.sleep(2)  # no worker: nothing happens
    assert api.call("GET", f"/import/task/{celery_id}/status").body == {"id": celery_id, "status": "PENDING",
                                                                        "progress": None}
    # The POST wrote its orchestrator task, listed like any other (docs/tracardi.md §9).
    [orchestrator] = api.call("GET", "/tasks/type/upgrade").body["grouped"]["Tasks"]
    assert (orchestrator["name"], orchestrator["id"], orchestrator["task_id"]) == (
        ORCHESTRATOR_NAME, celery_id, celery_id)
    assert orchestrator["event_type"] == "missing"
    assert api.call("POST", "/migration", {"from_version": "080", "from_tenant_name": None,
                                           "ids": [s["id"] for s in schemas]}).body is None

    sims.start("worker", "0.8.1", new)
    states = wait_tasks(api, len(schemas), f"080.{old}")
    assert set(states.values()) == {"SUCCESS"}
    assert api.call("GET", f"/import/task/{celery_id}/status").body["status"] == "SUCCESS"
    tasks = copy_tasks(api, f"080.{old}")
    assert all(t["status"] == "PROGRESS" and t["name"].startswith("Migration of ") for t in tasks)
    assert all(t["id"] == t["task_id"] and t["event_type"] == "missing" for t in tasks)
    done = api.call("GET", f"/import/task/{tasks[0]['task_id']}/status").body
    assert (done["status"], done["progress"]) == ("SUCCESS", None)

    # The listing is capped: 50 newest by default, `limit` for more, `query` on the name.
    assert len(schemas) + 1 > 50
    listed = api.call("GET", "/tasks/type/upgrade").body["grouped"]["Tasks"]
    assert len(listed) == 50
    everything = api.call("GET", "/tasks/type/upgrade?limit=500").body["grouped"]["Tasks"]
    assert len(everything) == len(schemas) + 1
    millis = [t["timestamp"][:23] for t in everything]  # Elasticsearch's `date` keeps milliseconds
    assert millis == sorted(millis, reverse=True)
    assert len(listed) == len({t["id"] for t in listed})
    assert everything[-1]["name"] == ORCHESTRATOR_NAME
    found = api.call("GET", "/tasks/type/upgrade?limit=500&query=orchestrator").body["grouped"]["Tasks"]
    assert [t["id"] for t in found] == [celery_id]
    flow = api.call("GET", f"/tasks/type/upgrade?query=prod-080.{old}.tracardi-flow").body["grouped"]["Tasks"]
    assert [t["name"] for t in flow] == [f'Migration of "prod-080.{old}.tracardi-flow"']
    assert api.call("GET", "/tasks/type/upgrade?limit=many").status == 422

    for s in schemas:
        ci = s["copy_index"]
        if ci["to_index"].endswith(".tracardi-task"):
            continue  # holds the running migration's own tasks
        assert count(es, ci["to_index"]) == count(es, ci["from_index"]), ci
    for index, n in seeded.items():
        assert count(es, index.replace(f"080.{old}.", f"08x.{new}.")) == n
    profile = es.search(index=f"{new}.tracardi-profile", size=50)["hits"]["hits"]
    assert profile
    assert all("pii" not in h["_source"] and "contact" in h["_source"]["data"] for h in profile)
    rules = es.search(index=f"prod-{new}.tracardi-rule")["hits"]["hits"]
    assert rules
    assert all("event" not in h["_source"] and "id" in h["_source"]["event_type"] for h in rules)


def test_migration_skips_partitioned_fault(sims: Sims, es: Elasticsearch, tenants: Callable[[str], str]) -> None:
    old, new = tenants("o"), tenants("n")
    seeded = _install_and_seed_080(sims, es, old)
    api = sims.start("api", "0.8.1", new, {"TRACARDI_SIM_FAULTS": "migration-skips-partitioned"})
    api.install()
    api.login()
    sims.start("worker", "0.8.1", new)
    _, schemas = migrate(api, "080", old)
    assert not any(s["copy_index"]["multi"] for s in schemas)
    assert set(wait_tasks(api, len(schemas), f"080.{old}").values()) == {"SUCCESS"}
    assert count(es, f"{new}.tracardi-event") == 0
    assert count(es, f"prod-{new}.tracardi-profile") == 0
    assert sum(n for i, n in seeded.items() if "-event-" in i) > 0
    assert count(es, f"{new}.tracardi-rule") == SMALL.config


def _install_and_seed_08x(sims: Sims, es: Elasticsearch, tenant: str) -> dict[str, int]:
    sims.start("api", "0.8.1", tenant).install()
    return dict(seed(es, V08X, tenant, SMALL, rng_seed=5).counts)


def test_08x_to_0820_faithful(sims: Sims, es: Elasticsearch, tenants: Callable[[str], str]) -> None:
    old, new = tenants("o"), tenants("n")
    seeded = _install_and_seed_08x(sims, es, old)
    api = sims.start("api", "0.8.2.1", new)
    api.install()
    api.login()
    sims.start("worker", "0.8.2.1", new)
    for context, prefix in (("staging", ""), ("production", "prod-")):
        api.context = context
        _, schemas = migrate(api, "08x", old)
        assert schemas
        assert all(s["copy_index"]["from_index"].startswith(prefix + "08x.") for s in schemas)
        assert not any(s["copy_index"]["production"] for s in schemas)  # 0.8.2.1: false on prod- entries too
        assert not any(s["copy_index"]["multi"] for s in schemas)  # the regex bug: no partitioned entry
        assert set(wait_tasks(api, len(schemas), f"08x.{old}").values()) == {"SUCCESS"}
        for res in ("entity", "console-log"):
            unaliased = f"{prefix}0820.{new}.tracardi-{res}"
            assert count(es, unaliased) == seeded[f"{prefix}08x.{old}.tracardi-{res}"]
            assert es.indices.get_alias(index=unaliased)[unaliased]["aliases"] == {}
            assert count(es, f"{prefix}{new}.tracardi-{res}") == 0  # what 0.8.2.1 reads
        assert count(es, f"{prefix}{new}.tracardi-event") == 0
        entity = es.search(index=f"{prefix}0820.{new}.tracardi-entity")["hits"]["hits"]
        assert all("timestamp" not in h["_source"] for h in entity)


def test_08x_to_0820_fixed(sims: Sims, es: Elasticsearch, tenants: Callable[[str], str]) -> None:
    old, new = tenants("o"), tenants("n")
    seeded = _install_and_seed_08x(sims, es, old)
    api = sims.start("api", "0.8.2.1", new, {"TRACARDI_SIM_MIGRATION": "fixed"})
    api.install()
    api.login()
    sims.start("worker", "0.8.2.1", new)
    for context, prefix in (("staging", ""), ("production", "prod-")):
        api.context = context
        _, schemas = migrate(api, "08x", old)
        assert any(s["copy_index"]["multi"] for s in schemas)
        assert set(wait_tasks(api, len(schemas), f"08x.{old}").values()) == {"SUCCESS"}
        for res in ("event", "profile", "session", "log", "user-log", "item", "entity", "console-log"):
            source = re.compile(rf"^{re.escape(f'{prefix}08x.{old}.tracardi-{res}')}(-\d{{4}}-\d+)?$")
            source_total = sum(n for i, n in seeded.items() if source.match(i))
            assert source_total > 0, res
            assert count(es, f"{prefix}{new}.tracardi-{res}") == source_total, res
        merged = es.indices.get_alias(name=f"{prefix}{new}.tracardi-event")
        q = (dt.date.today().month - 1) // 3 + 1
        assert f"{prefix}0820.{new}.tracardi-event-{dt.date.today().year}-q{q}" in merged
        profiles = es.search(index=f"{prefix}{new}.tracardi-profile", size=100)["hits"]["hits"]
        assert all(isinstance(h["_source"]["data"]["contact"]["email"], dict) for h in profiles)
        assert all("name" not in h["_source"]["data"].get("pii", {}) for h in profiles)
        events = es.search(index=f"{prefix}{new}.tracardi-event", size=100,
                           query={"exists": {"field": "data.pii.display_name"}})["hits"]["hits"]
        assert events
        ids = es.search(index=f"{prefix}{new}.tracardi-event", size=0,
                        aggs={"dup": {"terms": {"field": "id", "min_doc_count": 2}}})
        assert ids["aggregations"]["dup"]["buckets"] == []


def test_fault_http_500_and_slow(sims: Sims, tenants: Callable[[str], str]) -> None:
    tenant = tenants("f")
    broken = sims.start("api", "0.8.1", tenant, {"TRACARDI_SIM_FAULTS": "http-500:1"})
    assert broken.call("GET", "/healthcheck").status == 200
    for path in ("/info/version/details", "/install", "/migrations"):
        a = broken.call("GET", path)
        assert a.status == 500
        assert "detail" in a.body
    slow = sims.start("api", "0.8.1", tenant, {"TRACARDI_SIM_FAULTS": "slow:1s"})
    started = time.monotonic()
    assert slow.call("GET", "/info/version/details").status == 200
    assert time.monotonic() - started >= 1.0


def test_fault_task_fails(sims: Sims, es: Elasticsearch, tenants: Callable[[str], str]) -> None:
    old, new = tenants("o"), tenants("n")
    _install_and_seed_080(sims, es, old)
    api = sims.start("api", "0.8.1", new)
    api.install()
    api.login()
    sims.start("worker", "0.8.1", new, {"TRACARDI_SIM_FAULTS": "task-fails"})
    celery_id, schemas = migrate(api, "080", old)
    assert set(wait_tasks(api, len(schemas), f"080.{old}").values()) == {"FAILURE"}
    assert api.call("GET", f"/import/task/{celery_id}/status").body["status"] == "SUCCESS"
    assert count(es, f"{new}.tracardi-rule") == 0


def test_fault_install_partial(sims: Sims, es: Elasticsearch, tenants: Callable[[str], str]) -> None:
    tenant = tenants("p")
    api = sims.start("api", "0.8.2.1", tenant, {"TRACARDI_SIM_FAULTS": "install-partial"})
    answer = api.call("POST", "/install", ADMIN)
    assert answer.status == 200
    status = api.call("GET", "/install").body
    assert status["schema_ok"] is False
    assert status["admin_ok"] is True
    expected = expected_index_set(V0820, Namespace("0820", tenant), {}, dt.date.today())
    have = existing_indices(es, f"*.{tenant}.*")
    assert set(have) < set(expected.indices)
    assert all(name.startswith("prod-") for name in set(expected.indices) - set(have))


def test_the_older_versions_tasks_are_carried_over(sims: Sims, es: Elasticsearch,
                                                   tenants: Callable[[str], str]) -> None:
    """The task index is migrated too: after 08x→0820 the new version lists the 080→08x tasks as well."""
    first, second, third = tenants("o"), tenants("m"), tenants("n")
    _install_and_seed_080(sims, es, first)
    mid = sims.start("api", "0.8.1", second)
    mid.install()
    mid.login()
    sims.start("worker", "0.8.1", second)
    _, schemas = migrate(mid, "080", first)
    wait_tasks(mid, len(schemas), f"080.{first}")
    old_ids = {t["id"] for t in mid.call("GET", "/tasks/type/upgrade?limit=1000").body["grouped"]["Tasks"]}

    new = sims.start("api", "0.8.2.1", third)
    new.install()
    new.login()
    sims.start("worker", "0.8.2.1", third)
    _, schemas = migrate(new, "08x", second)
    wait_tasks(new, len(schemas), f"08x.{second}")
    listed = new.call("GET", "/tasks/type/upgrade?limit=1000").body["grouped"]["Tasks"]
    assert old_ids <= {t["id"] for t in listed}
    assert sum(t["name"] == ORCHESTRATOR_NAME for t in listed) == 2
    newest = new.call("GET", "/tasks/type/upgrade").body["grouped"]["Tasks"]
    assert len(newest) == 50
    assert not old_ids & {t["id"] for t in newest[: len(schemas) + 1]}


# --- shared mode: one process serving many containers -------------------------------------------------

@pytest.fixture
def shared_sims(es_url: str, redis_url: str, tenants: Callable[[str], str], tmp_path: Path) -> Iterator[Sims]:
    """Containers handed to one shared simulator process (as the node agent does in shared mode)."""
    shared = SharedSimulator(tmp_path, REPO, sys.executable, "test:simulator-shared",
                             env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")})
    s = Sims(es_url=es_url, redis_url=redis_url, shared=shared)
    yield s
    s.stop_all()
    if shared.alive():
        runtime.stop_process(shared._proc, 5.0)  # type: ignore[arg-type]


def test_shared_serves_every_version_at_its_own_address(shared_sims: Sims, tenants: Callable[[str], str]) -> None:
    apis = {tag: shared_sims.start("api", tag, tenants("v")) for tag in ("0.8.0", "0.8.1", "0.8.2.1")}
    gui = shared_sims.start("gui", "0.8.1", "", {"API_URL": apis["0.8.1"].url})
    assert shared_sims.shared is not None
    pid = shared_sims.shared.pid
    assert {h.pid for h in shared_sims.handles} == {pid}, "one process serves them all"
    for tag, api in apis.items():
        assert api.call("GET", "/info/version/details").body["version"] == version_for_tag(tag).version
    page = urllib.request.urlopen(gui.url + "/", timeout=10).read().decode()
    assert apis["0.8.1"].url in page
    # Each container's log lines go to its own file: the API's start-up line names its own address.
    for api in apis.values():
        ip, port = api.url.removeprefix("http://").split(":")
        text = (shared_sims.shared.pods_dir / f"api-{ip}-{port}.log").read_text()
        assert f"on {ip}:{port}" in text
        assert all(f"on {other.url.removeprefix('http://')}" not in text for other in apis.values() if other is not api)


def test_shared_fails_at_start_as_the_process_would(shared_sims: Sims, tenants: Callable[[str], str]) -> None:
    assert shared_sims.shared is not None
    shared = shared_sims.shared

    def start(component: str, tag: str, extra: dict[str, str] | None = None, port: int = 8686) -> SharedContainer:
        ip = f"127.0.{os.getpid() % 200 + 20}.{next(_ADDRESSES) % 250 + 2}"
        spec = {"component": component, "tag": tag, "host": ip, "port": port,
                "env": shared_sims.env(tenants("f"), extra)}
        handle = shared.start(uuid.uuid4().hex, spec, shared.pods_dir / f"fail-{ip}.log", "test", component)
        shared_sims.handles.append(handle)
        return handle

    assert start("api", "9.9.9").exit_code() == 2  # unknown tag
    for component in ("api", "worker"):  # 0.8.2.x reads PERFORMANCE_TRACKING as a Sentry DSN
        failed = start(component, "0.8.2.1", {"PERFORMANCE_TRACKING": "no"})
        assert failed.exit_code() == 1
        assert "Unsupported scheme" in failed.log_path.read_text()
    taken = shared_sims.start("api", "0.8.1", tenants("t"))
    ip, port = taken.url.removeprefix("http://").split(":")
    busy = start("api", "0.8.1")
    assert busy.exit_code() is None
    spec = {"component": "api", "tag": "0.8.1", "host": ip, "port": int(port), "env": shared_sims.env("x", None)}
    clash = shared.start(uuid.uuid4().hex, spec, shared.pods_dir / "clash.log", "test", "api")
    shared_sims.handles.append(clash)
    assert clash.exit_code() == 1  # the address is taken, as a second process could not bind it
    assert "cannot listen" in clash.log_path.read_text()


def test_shared_stop_and_death(shared_sims: Sims, tenants: Callable[[str], str]) -> None:
    assert shared_sims.shared is not None
    shared = shared_sims.shared
    first = shared_sims.start("api", "0.8.1", tenants("d"))
    shared_sims.start("worker", "0.8.1", tenants("d"))
    stopped, alive = shared_sims.handles  # the API and the worker
    stopped.signal_stop()
    stopped.finish_stop(time.monotonic() + 10)
    assert stopped.exit_code() == 0  # as SIGTERM ends the process cleanly
    assert not port_open(*first.url.removeprefix("http://").split(":"))  # type: ignore[arg-type]
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and alive.exit_code() is None:  # the worker keeps polling
        time.sleep(0.2)
    assert alive.exit_code() is None
    old_pid = shared.pid
    os.kill(old_pid, signal.SIGKILL)  # the process dies: every container with it, as 137
    deadline = time.monotonic() + 10
    while alive.exit_code() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive.exit_code() == 137
    again = shared_sims.start("api", "0.8.1", tenants("d"))  # the next container starts a new process
    assert shared.pid != old_pid
    assert again.call("GET", "/healthcheck").status == 200


def test_080_to_08x_in_the_shared_simulator(shared_sims: Sims, es: Elasticsearch,
                                            tenants: Callable[[str], str]) -> None:
    """The whole 0.8.0 → 0.8.1 migration (API, worker, task listing, copies) with every container in one
    process: the same test as with a process each."""
    test_080_to_08x_with_and_without_worker(shared_sims, es, tenants)
