"""Writes realistic documents into an installed (simulated) Tracardi version, both contexts.

`python -m devenv.seed --version 0.8.0 [--tenant T] --profiles N --events M --sessions S ... [--es-url URL]`
(default URL: $ELASTICSEARCH_URL). Documents have each version's shape, only fields that Tracardi itself
stores, as its strict mappings demand (docs/tracardi.md §9): 0.8.0 profiles with top-level `pii` and
traits only under `private`/`public`; 0.8.1 with `data.contact.email` strings and `data.pii.name`; 0.8.2
with `data.contact.email.main`; no `id` field in log, user-log and console-log documents (their id is the
Elasticsearch `_id` only); items without `name`, the product under `data.product`.
timestamps spread over several months so that partitioned resources get several partitions, and ids
that depend only on `--seed`. `seed(...)` is the same as a function, for tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk

from devenv.simulator.es import connect
from devenv.simulator.naming import (
    CONTEXTS,
    Context,
    Namespace,
    default_tenant,
    effective_partitioning,
    partition_suffix,
)
from devenv.simulator.versions import Version, version_for_tag

Doc = dict[str, Any]


@dataclass(frozen=True)
class SeedCounts:
    profiles: int = 20
    events: int = 60
    sessions: int = 20
    logs: int = 10
    user_logs: int = 5
    items: int = 5
    entities: int = 5
    console_logs: int = 5
    config: int = 3
    """Documents per configuration resource that a migration script reshapes (rule, event-to-profile, ...)."""
    months: int = 3
    """Number of months (ending with the current one) that timestamps spread over."""


@dataclass
class SeedReport:
    namespace: Namespace
    counts: Counter[str] = field(default_factory=Counter)
    """Documents written per index."""
    ids: dict[str, list[str]] = field(default_factory=dict)
    """Ids written per resource key and context, `<context>/<resource>`."""

    def lines(self) -> list[str]:
        return [f"{n:6d}  {index}" for index, n in sorted(self.counts.items())]


def _months_back(today: dt.date, n: int) -> dt.date:
    y, m = today.year, today.month - n
    while m <= 0:
        y, m = y - 1, m + 12
    return dt.date(y, m, 1)


class _Gen:
    """Deterministic values from one random.Random."""

    def __init__(self, rng: random.Random, today: dt.date, months: int) -> None:
        self.rng = rng
        self.today = today
        self.months = max(1, months)

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def when(self, i: int) -> dt.datetime:
        first = _months_back(self.today, i % self.months)
        last_day = self.today.day if first.month == self.today.month and first.year == self.today.year else 28
        day = self.rng.randint(1, max(1, min(28, last_day)))
        return dt.datetime(first.year, first.month, day, self.rng.randint(0, 23), self.rng.randint(0, 59),
                           tzinfo=dt.UTC)

    def pick(self, options: list[Any]) -> Any:
        return options[self.rng.randrange(len(options))]


FIRST = ["Anna", "Jan", "Maria", "Piotr", "Eva", "John", "Zoe", "Omar", "Lena", "Ravi"]
LAST = ["Nowak", "Smith", "Kowalski", "Garcia", "Muller", "Rossi", "Chen", "Ivanov"]
EVENT_TYPES = ["page-view", "identification", "purchase-order", "add-to-cart", "sign-up"]


def _profile(g: _Gen, db: str, i: int, ts: dt.datetime) -> Doc:
    first, last = g.pick(FIRST), g.pick(LAST)
    email = None if i % 7 == 3 else f"{first.lower()}.{last.lower()}{i}@example.com"
    phone = None if i % 5 == 4 else f"+48 600 {i:03d} {g.rng.randint(100, 999)}"
    doc: Doc = {
        "id": "", "metadata": {"time": {"insert": ts.isoformat(), "visit": {"count": g.rng.randint(1, 9)}}},
        "active": True, "traits": {"plan": g.pick(["free", "pro"]), "score": i}, "stats": {"visits": i % 9},
        "segments": ["returning"] if i % 2 else [], "consents": {},
    }
    if db == "080":
        doc["traits"] = {"private": {"score": i}, "public": {"plan": g.pick(["free", "pro"])}}
        doc["pii"] = {"name": first, "surname": last, "birthDate": None, "email": email, "telephone": phone,
                      "twitter": f"@{first.lower()}{i}" if i % 3 == 0 else None, "facebook": None,
                      "whatsapp": phone, "other": {}}
        return doc
    if db == "08x":
        data: Doc = {"pii": {"firstname": first, "lastname": last, "name": f"{first} {last}"},
                     "media": {}, "devices": {"names": [f"device-{i}"]}, "identifier": {}, "loyalty": {}}
        if i % 6 != 5:  # some profiles without any contact
            data["contact"] = {"email": email, "phone": phone, "address": {}, "app": {}}
        doc["data"] = data
        return doc
    doc["data"] = {"anonymous": email is None, "pii": {"firstname": first, "lastname": last,
                                                       "display_name": f"{first} {last}"},
                   "contact": {"email": {"main": email or ""}, "phone": {"main": phone or ""}},
                   "devices": {"other": [f"device-{i}"]}}
    return doc


def _event(g: _Gen, db: str, i: int, ts: dt.datetime, profile_id: str, session_id: str) -> Doc:
    kind = g.pick(EVENT_TYPES)
    doc: Doc = {"id": "", "type": kind, "metadata": {"time": {"insert": ts.isoformat()}, "status": "collected"},
                "session": {"id": session_id}, "profile": {"id": profile_id}, "source": {"id": "@static-page"},
                "properties": {"url": f"https://shop.example.com/p/{i}"}, "context": {}}
    if db == "080":
        return doc
    name = f"{g.pick(FIRST)} {g.pick(LAST)}"
    if db == "08x":
        data: Doc = {}
        if kind == "identification":
            data["pii"] = {"name": name}
            data["contact"] = {"email": f"user{i}@example.com", "phone": None}
        if kind == "purchase-order":
            data["ec"] = {"order": {"id": f"order-{i}", "cost": {"tax": 2.5, "shipping": 5.0, "other": 0.0,
                                                                  "discount": 1.0},
                                    "income": {"revenue": 50.0}}}
        if data:
            doc["data"] = data
        return doc
    if kind == "identification":
        doc["data"] = {"pii": {"display_name": name}, "contact": {"email": {"main": f"user{i}@example.com"}}}
    return doc


def _session(g: _Gen, db: str, i: int, ts: dt.datetime, profile_id: str) -> Doc:
    doc: Doc = {"id": "", "metadata": {"time": {"insert": ts.isoformat()}}, "profile": {"id": profile_id},
                "context": {"browser": {"local": {"browser": {"name": g.pick(["Chrome", "Firefox"])},
                                                  "device": {"platform": g.pick(["Linux", "MacIntel"])}}}}}
    if db != "080":
        doc.update({"device": {}, "os": {"name": "Linux"}, "app": {"name": "Chrome"}, "utm": {}})
    return doc


def _log(g: _Gen, i: int, ts: dt.datetime) -> Doc:
    return {"date": ts.isoformat(), "message": f"Simulated log line {i}", "logger": "tracardi",
            "level": g.pick(["INFO", "WARNING", "ERROR"]), "file": "worker.py", "line": 10 + i}


def _entity(g: _Gen, db: str, i: int, ts: dt.datetime, profile_id: str) -> Doc:
    doc: Doc = {"id": "", "type": "purchase", "profile": {"id": profile_id}, "properties": {"n": i}}
    if db in ("0820", "082x"):
        doc["metadata"] = {"time": {"insert": ts.isoformat(), "create": ts.isoformat()}}
    else:
        doc["timestamp"] = ts.isoformat()
    return doc


def _console_log(g: _Gen, i: int, ts: dt.datetime, event_id: str, profile_id: str) -> Doc:
    return {"metadata": {"timestamp": ts.isoformat()}, "origin": "node", "event_id": event_id,
            "profile_id": profile_id, "flow_id": f"flow-{i % 3}", "module": "tracardi.process_engine",
            "class_name": "Debug", "type": g.pick(["warning", "error"]), "message": f"Console message {i}"}


def _item(g: _Gen, i: int, ts: dt.datetime, profile_id: str) -> Doc:
    return {"timestamp": ts.isoformat(), "type": "product", "profile": {"id": profile_id}, "properties": {},
            "data": {"product": {"id": f"sku-{i}", "name": f"Item {i}", "price": 10.0 + i}}}


def _config_docs(g: _Gen, db: str, key: str, i: int) -> Doc | None:
    """Configuration documents that a migration script reshapes, in the version's shape."""
    t = g.pick(EVENT_TYPES)
    old = db == "080"
    if key == "rule":
        return {"id": "", "name": f"Rule {i}", "enabled": True, "flow": {"id": f"flow-{i}"},
                **({"event": {"type": t}} if old else {"event_type": {"id": t, "name": t}})}
    if key == "event-to-profile":
        return {"id": "", "name": f"Mapping {i}", "enabled": True,
                "event_type": t if old else {"id": t, "name": t}}
    if key == "event-management":
        return {"id": "", "name": f"Event type {i}", "event_type": t,
                **({"index_enabled": i % 2 == 0} if old else {"enabled": i % 2 == 0})}
    if key == "event-reshaping" and db == "08x":
        return {"id": "", "name": f"Reshaping {i}", "enabled": True, "mapping": {"profile": {"a": "b"}}}
    return None


def _plan(version: Version, ns: Namespace, counts: SeedCounts, rng_seed: int,
          today: dt.date) -> Iterator[tuple[Context, str, dt.datetime | None, str, Doc]]:
    """(context, resource key, timestamp for partitioned resources, Elasticsearch `_id`, document) in a
    deterministic order. Where Tracardi stores an `id` field, it equals the `_id`."""
    g = _Gen(random.Random(rng_seed), today, counts.months)
    db = version.db_version
    keys = {r.key for r in version.resources}
    for context in CONTEXTS:
        profiles = [g.uid() for _ in range(counts.profiles)] or [g.uid()]
        sessions = [g.uid() for _ in range(counts.sessions)] or [g.uid()]
        events: list[str] = []
        for i, pid in enumerate(profiles[: counts.profiles]):
            ts = g.when(i)
            yield context, "profile", ts, pid, {**_profile(g, db, i, ts), "id": pid}
        for i, sid in enumerate(sessions[: counts.sessions]):
            ts = g.when(i)
            yield context, "session", ts, sid, {**_session(g, db, i, ts, profiles[i % len(profiles)]), "id": sid}
        for i in range(counts.events):
            ts, eid = g.when(i), g.uid()
            events.append(eid)
            doc = _event(g, db, i, ts, profiles[i % len(profiles)], sessions[i % len(sessions)])
            yield context, "event", ts, eid, {**doc, "id": eid}
        for i in range(counts.logs):
            ts = g.when(i)
            yield context, "log", ts, g.uid(), _log(g, i, ts)
        for i in range(counts.user_logs):
            ts = g.when(i)
            yield context, "user-logs", ts, g.uid(), {"email": f"admin{i}@example.com", "timestamp": ts.isoformat(),
                                                      "successful": i % 4 != 0}
        if "item" in keys:
            for i in range(counts.items):
                ts = g.when(i)
                iid = g.uid()
                yield context, "item", ts, iid, {**_item(g, i, ts, profiles[i % len(profiles)]), "id": iid}
        for i in range(counts.entities):
            ts = g.when(i)
            nid = g.uid()
            yield context, "entity", ts, nid, {**_entity(g, db, i, ts, profiles[i % len(profiles)]), "id": nid}
        for i in range(counts.console_logs):
            ts = g.when(i)
            eid = events[i % len(events)] if events else g.uid()
            doc = _console_log(g, i, ts, eid, profiles[i % len(profiles)])
            yield context, "console-log", ts, g.uid(), doc
        for key in ("rule", "event-to-profile", "event-management", "event-reshaping"):
            for i in range(counts.config):
                cfg = _config_docs(g, db, key, i)
                if cfg is not None:
                    cid = g.uid()
                    yield context, key, None, cid, {**cfg, "id": cid}


def seed(
    es: Elasticsearch,
    version: Version,
    tenant: str | None = None,
    counts: SeedCounts | None = None,
    rng_seed: int = 42,
    today: dt.date | None = None,
    env: dict[str, str] | None = None,
) -> SeedReport:
    """Write the documents with the bulk API (refreshed), return what went where."""
    ns = Namespace(version.db_version, tenant or default_tenant(version))
    counts = counts or SeedCounts()
    day = today or dt.date.today()
    report = SeedReport(ns)
    actions: list[Doc] = []
    for context, key, ts, doc_id, doc in _plan(version, ns, counts, rng_seed, day):
        resource = version.resource(key)
        part = effective_partitioning(resource, env or {})
        suffix = partition_suffix(part, ts.date()) if part and ts else None
        index = ns.index(resource, context, suffix)
        actions.append({"_op_type": "create", "_index": index, "_id": doc_id, "_source": doc})
        report.counts[index] += 1
        report.ids.setdefault(f"{context}/{key}", []).append(doc_id)
    bulk(es, actions, refresh=True, chunk_size=500)  # raises BulkIndexError when a mapping rejects a document
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devenv.seed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", required=True, help="image tag of the installed version, e.g. 0.8.0")
    p.add_argument("--tenant", help="tenant (default: the version's md5 rule, e.g. fa73a for 0.8.0)")
    p.add_argument("--es-url", default=os.environ.get("ELASTICSEARCH_URL"), help="default $ELASTICSEARCH_URL")
    p.add_argument("--seed", type=int, default=42, help="random seed: same seed, same ids")
    defaults = SeedCounts()
    number: Callable[[str], int] = int
    for name in ("profiles", "events", "sessions", "logs", "user_logs", "items", "entities", "console_logs",
                 "config", "months"):
        p.add_argument(f"--{name.replace('_', '-')}", type=number, default=getattr(defaults, name))
    args = p.parse_args(argv)
    if not args.es_url:
        print("devenv.seed: no --es-url and no $ELASTICSEARCH_URL", file=sys.stderr)
        return 2
    try:
        version = version_for_tag(args.version)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    counts = SeedCounts(**{k: getattr(args, k) for k in (
        "profiles", "events", "sessions", "logs", "user_logs", "items", "entities", "console_logs", "config",
        "months")})
    report = seed(connect([args.es_url]), version, args.tenant, counts, args.seed, env=dict(os.environ))
    print(f"seeded Tracardi {version.version} (db {report.namespace.db}, tenant {report.namespace.tenant}):")
    print("\n".join(report.lines()))
    print(f"{sum(report.counts.values()):6d}  documents in {len(report.counts)} indices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
