"""POST /install and GET /install: create a version's index set on Elasticsearch and check it.

What is created (docs/tracardi.md §4, docs/tracardi-resources.md "Notes"): per context the plain indices,
the composable index template of every partitioned resource and its current partition, the aliases;
the static indices once; `_meta` in every mapping; the admin user in the staging user index; default
event sources (both contexts), bridges and action plugins. Per-index errors are only logged, as in
Tracardi, so a 200 proves nothing: GET /install is the check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch, TransportError

from devenv.simulator.es import existing_aliases, existing_indices, existing_templates
from devenv.simulator.mappings import INDEX_SETTINGS, Json, mapping_for
from devenv.simulator.naming import (
    CONTEXTS,
    Context,
    Namespace,
    effective_partitioning,
    expected_index_set,
    partition_suffix,
)
from devenv.simulator.settings import Settings
from devenv.simulator.versions import Resource, Version

log = logging.getLogger("tracardi.install")

ADMIN_ROLES = ["admin", "maintainer"]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class IndexAction:
    """One index (plain, static or the current partition) with its mapping and alias."""

    resource: Resource
    index: str
    alias: str
    mapping: Json


@dataclass(frozen=True)
class TemplateAction:
    resource: Resource
    name: str
    pattern: str
    alias: str
    mapping: Json


@dataclass
class ContextPlan:
    context: Context
    templates: list[TemplateAction] = field(default_factory=list)
    indices: list[IndexAction] = field(default_factory=list)


def plan_install(settings: Settings, today: dt.date) -> list[ContextPlan]:
    """What an install creates, per context (pure). The install-partial fault leaves some indices out."""
    version, ns = settings.version, settings.namespace
    plans: list[ContextPlan] = []
    for context in CONTEXTS:
        plan = ContextPlan(context)
        for r in version.resources:
            mapping = mapping_for(ns, r)
            if r.static:
                if context == "staging":
                    plan.indices.append(IndexAction(r, ns.index(r, context), ns.alias(r, context), mapping))
                continue
            part = effective_partitioning(r, settings.env)
            if part is None:
                plan.indices.append(IndexAction(r, ns.index(r, context), ns.alias(r, context), mapping))
                continue
            plan.templates.append(
                TemplateAction(r, ns.template(r, context), ns.template_pattern(r, context),
                               ns.alias(r, context), mapping)
            )
            suffix = partition_suffix(part, today)
            plan.indices.append(IndexAction(r, ns.index(r, context, suffix), ns.alias(r, context), mapping))
        plans.append(plan)
    if settings.faults.install_partial:
        _leave_out(plans[1], version)
    return plans


def partial_install_left_out(version: Version) -> tuple[str, ...]:
    """Resources whose production index the install-partial fault leaves out."""
    plain = [r.key for r in version.plain]
    return (*plain[-3:], "event")


def _leave_out(plan: ContextPlan, version: Version) -> None:
    skip = set(partial_install_left_out(version))
    plan.indices = [a for a in plan.indices if a.resource.key not in skip]


def apply_install(
    es: Elasticsearch, settings: Settings, admin: tuple[str, str] | None, today: dt.date
) -> list[Json]:
    """Create what `plan_install` lists (existing ones get a mapping update); one result per context."""
    results: list[Json] = []
    for plan in plan_install(settings, today):
        created: dict[str, list[str]] = {"templates": [], "indices": [], "aliases": []}
        for t in plan.templates:
            body = {
                "index_patterns": [t.pattern],
                "priority": 1,
                "template": {"settings": INDEX_SETTINGS, "mappings": t.mapping, "aliases": {t.alias: {}}},
                "_meta": t.mapping["_meta"],
            }
            if _logged(f"template {t.name}", lambda t=t, body=body: _put_template(es, t.name, body)):
                created["templates"].append(t.name)
        for a in plan.indices:
            made = _logged(f"index {a.index}", lambda a=a: _ensure_index(es, a))
            if made:
                created["indices"].append(a.index)
                created["aliases"].append(a.alias)
        _write_defaults(es, settings, plan.context)
        if plan.context == "staging" and admin is not None:
            _logged("admin user", lambda: _write_admin(es, settings, *admin))
        results.append({"created": created, "admin": True, "plugins": {"registered": [], "errors": []}})
    _logged("refresh", lambda: es.indices.refresh(index=f"*{settings.namespace.db}.{settings.namespace.tenant}.*"))
    return results


def _logged(what: str, action: Any) -> bool:
    """Run one install step; Tracardi logs per-index errors and carries on."""
    try:
        return bool(action())
    except TransportError as e:
        log.error("install: %s failed: %s", what, e)
        return False


def _put_template(es: Elasticsearch, name: str, body: Json) -> bool:
    es.indices.put_index_template(name=name, body=body)
    return True


def _ensure_index(es: Elasticsearch, action: IndexAction) -> bool:
    """Create the index with its alias; an existing one gets a mapping update. True when created."""
    if es.indices.exists(index=action.index):
        es.indices.put_mapping(index=action.index, body=action.mapping)
        es.indices.put_alias(index=action.index, name=action.alias)
        return False
    es.indices.create(
        index=action.index,
        body={"settings": INDEX_SETTINGS, "mappings": action.mapping, "aliases": {action.alias: {}}},
    )
    return True


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def user_id(email: str) -> str:
    return hashlib.md5(email.encode(), usedforsecurity=False).hexdigest()


def _write_admin(es: Elasticsearch, settings: Settings, username: str, password: str) -> bool:
    r = settings.version.resource("user")
    doc = {
        "id": user_id(username), "email": username, "password": password_hash(password),
        "full_name": "Tracardi Admin", "roles": ADMIN_ROLES, "disabled": False, "preference": {},
        "expiration_timestamp": None,
    }
    es.index(index=settings.namespace.index(r, "staging"), id=str(doc["id"]), document=doc, refresh=True)
    return True


_DEFAULT_SOURCES = (
    ("@static-page", "Static web page", "javascript"),
    ("@internal", "Internal event source", "internal"),
)
_BRIDGES = (("778ded05-4ff3-4e08-9a86-72c0195fa95d", "REST API Bridge", "rest"),
            ("3d8bb87e-28d1-4a38-b19c-d0c1fbb71e22", "Javascript Bridge", "javascript"))
_PLUGINS = (("tracardi.process_engine.action.v1.start_action", "Start"),
            ("tracardi.process_engine.action.v1.end_action", "End"),
            ("tracardi.process_engine.action.v1.debug_payload_action", "Debug"))


def _write_defaults(es: Elasticsearch, settings: Settings, context: Context) -> None:
    ns, version = settings.namespace, settings.version
    now = dt.datetime.now(dt.UTC).isoformat()
    docs: list[tuple[str, str, Json]] = []
    for sid, name, kind in _DEFAULT_SOURCES:
        docs.append((ns.index(version.resource("event-source"), context), sid,
                     {"id": sid, "name": name, "type": kind, "enabled": True, "transitional": False,
                      "timestamp": now, "tags": ["default"]}))
    if context == "staging":
        for bid, name, kind in _BRIDGES:
            docs.append((ns.index(version.resource("bridge"), context), bid,
                         {"id": bid, "name": name, "type": kind}))
        for pid, name in _PLUGINS:
            docs.append((ns.index(version.resource("action"), context), pid, {"id": pid, "name": name}))
    for index, doc_id, doc in docs:
        _logged(f"document {index}/{doc_id}",
                lambda index=index, doc_id=doc_id, doc=doc: es.index(index=index, id=doc_id, document=doc))


@dataclass(frozen=True)
class InstallStatus:
    schema_ok: bool
    admin_ok: bool
    missing: tuple[str, ...]


def install_status(es: Elasticsearch, settings: Settings, today: dt.date) -> InstallStatus:
    """schema_ok: every plain/static index, template and alias of the version exists; admin_ok: an admin
    user in the staging user index."""
    ns = settings.namespace
    expected = expected_index_set(settings.version, ns, settings.env, today)
    have_indices = set(existing_indices(es, f"*{ns.db}.{ns.tenant}.*"))
    have_templates = set(existing_templates(es, f"*template.{ns.db}.{ns.tenant}.*"))
    have_aliases = existing_aliases(es, expected.aliases)
    partition_names = _current_partitions(settings.version, ns, settings.env, today)
    missing = [i for i in expected.indices if i not in have_indices and i not in partition_names]
    missing += [t for t in expected.templates if t not in have_templates]
    missing += [a for a in expected.aliases if a not in have_aliases]
    return InstallStatus(not missing, _admin_exists(es, settings), tuple(missing))


def _current_partitions(version: Version, ns: Namespace, env: Any, today: dt.date) -> set[str]:
    """Partitions are created on demand after the install month: their absence is not a broken schema."""
    names: set[str] = set()
    for r in version.partitioned:
        part = effective_partitioning(r, env)
        assert part is not None
        for context in CONTEXTS:
            names.add(ns.index(r, context, partition_suffix(part, today)))
    return names


def _admin_exists(es: Elasticsearch, settings: Settings) -> bool:
    index = settings.namespace.index(settings.version.resource("user"), "staging")
    try:
        body = es.count(index=index, body={"query": {"term": {"roles": "admin"}}})
    except TransportError:
        return False
    return int(body.get("count", 0)) > 0


def admin_credentials_ok(username: str, password: str) -> bool:
    return bool(EMAIL.match(username)) and bool(password)
