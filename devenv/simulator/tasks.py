"""The task queue between the simulated API and worker, kept in Elasticsearch's task index.

Real Tracardi: POST /migration writes a task document named `Migration plan orchestrator` and sends a
Celery orchestrator task over Redis; the update-worker runs it, writes one task document per copy into the
version's task index (`[prod-]<db>.<tenant>.tracardi-task`; those documents never change) and runs the
copies as more Celery tasks whose state (PENDING, PROGRESS, SUCCESS, FAILURE) GET /import/task/{id}/status
reads from Redis. GET /tasks/type/upgrade lists the task documents, orchestrator included, newest first,
`limit` (default 50) at a time (docs/tracardi.md §9 "Task listing", "Task documents").

Here the same task index carries the Celery side too, so that no index outside Tracardi's set appears:
- every task document has `id == task_id` (the Celery id), `type: upgrade`, `event_type: missing`;
- and a `celery` object standing in for Celery's state: {id, kind (orchestrator|copy), state, worker,
  claimed, finished, current, total, error, context, queue}; `queue` (`<db>.<tenant>`) keeps a worker
  away from task documents that a migration copied over from an older version's task index. The
  Tracardi-visible fields (`status: PROGRESS`, `progress: 0`) stay as Tracardi writes them.
- The worker claims a PENDING document with optimistic concurrency (`if_seq_no`/`if_primary_term`), so
  two workers never run the same copy. With no worker, everything stays PENDING, as with Celery.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError, TransportError
from elasticsearch.helpers import bulk

from devenv.simulator.mappings import Json
from devenv.simulator.naming import CONTEXTS, Context, Namespace
from devenv.simulator.versions import Version

UPGRADE = "upgrade"
ORCHESTRATOR_NAME = "Migration plan orchestrator"
DEFAULT_LIMIT = 50


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def task_index(version: Version, ns: Namespace, context: Context) -> str:
    return ns.index(version.resource("task"), context)


def queue_name(ns: Namespace) -> str:
    """Whose worker runs a task: copied task indices of older versions carry their own queue name."""
    return f"{ns.db}.{ns.tenant}"


def orchestrator_doc(celery_id: str, schemas: list[Json], from_version: str, from_tenant: str | None,
                     context: Context, queue: str) -> Json:
    return {
        "id": celery_id, "task_id": celery_id, "name": ORCHESTRATOR_NAME,
        "timestamp": now_iso(), "status": "PROGRESS", "type": UPGRADE, "progress": 0, "event_type": "missing",
        "params": {"schemas": schemas, "from_version": from_version, "from_tenant_name": from_tenant},
        "celery": {"id": celery_id, "kind": "orchestrator", "state": "PENDING", "context": context,
                   "queue": queue},
    }


def copy_task_name(schema: Json) -> str:
    ci = schema["copy_index"]
    return f'Migration of "{ci["from_index"]}" to "{ci["to_index"]}"' if ci.get("multi") else \
        f'Migration of "{ci["from_index"]}"'


def copy_doc(schema: Json, context: Context, queue: str) -> Json:
    celery_id = str(uuid.uuid4())
    return {
        "id": celery_id, "task_id": celery_id, "name": copy_task_name(schema),
        "timestamp": now_iso(), "status": "PROGRESS", "type": UPGRADE, "progress": 0, "event_type": "missing",
        "params": schema,
        "celery": {"id": celery_id, "kind": "copy", "state": "PENDING", "context": context, "queue": queue},
    }


def task_query(task_type: str, query: str | None) -> Json:
    """The Elasticsearch query of a task listing (pure)."""
    filters: list[Json] = [{"term": {"type": task_type}}]
    if query:
        escaped = "".join(f"\\{c}" if c in "*?\\" else c for c in query)
        filters.append({"wildcard": {"name": {"value": f"*{escaped}*", "case_insensitive": True}}})
    return {"bool": {"filter": filters}}


def public_task(doc: Json) -> Json:
    """A task document as GET /tasks/type/upgrade shows it (without the Redis stand-in)."""
    return {k: v for k, v in doc.items() if k != "celery"}


@dataclass(frozen=True)
class Claimed:
    index: str
    doc_id: str
    doc: Json


class TaskStore:
    """Reads and writes task documents of one installed version (both contexts)."""

    def __init__(self, es: Elasticsearch, version: Version, ns: Namespace) -> None:
        self.es = es
        self.version = version
        self.ns = ns

    def index(self, context: Context) -> str:
        return task_index(self.version, self.ns, context)

    def put(self, context: Context, doc: Json) -> None:
        self.es.index(index=self.index(context), id=doc["id"], document=doc, refresh=True)

    def put_many(self, context: Context, docs: list[Json]) -> None:
        actions = [{"_op_type": "index", "_index": self.index(context), "_id": d["id"], "_source": d} for d in docs]
        bulk(self.es, actions, refresh=True)

    def list_tasks(self, context: Context, task_type: str, limit: int = DEFAULT_LIMIT,
                   query: str | None = None) -> list[Json]:
        """GET /tasks/type/{type}: newest first, at most `limit`, names containing `query` when given."""
        body = {"query": task_query(task_type, query), "sort": [{"timestamp": "desc"}], "size": limit}
        try:
            hits = self.es.search(index=self.index(context), body=body)["hits"]["hits"]
        except NotFoundError:
            return []
        return [public_task(h["_source"]) for h in hits]

    def celery_state(self, celery_id: str) -> Json | None:
        """The `celery` object of the task with this Celery id, in either context (None: unknown)."""
        body = {"query": {"term": {"celery.id": celery_id}}, "size": 1}
        indices = ",".join(self.index(c) for c in CONTEXTS)
        try:
            hits = self.es.search(index=indices, body=body, ignore_unavailable=True)["hits"]["hits"]
        except NotFoundError:
            return None
        return dict(hits[0]["_source"]["celery"]) if hits else None

    def pending(self, context: Context, kind: str, size: int = 20) -> list[Claimed]:
        body = {
            "query": {"bool": {"filter": [{"term": {"celery.state": "PENDING"}},
                                          {"term": {"celery.kind": kind}},
                                          {"term": {"celery.queue": queue_name(self.ns)}}]}},
            "sort": [{"timestamp": "asc"}], "size": size, "seq_no_primary_term": True,
        }
        try:
            hits = self.es.search(index=self.index(context), body=body)["hits"]["hits"]
        except NotFoundError:
            return []
        return [Claimed(h["_index"], h["_id"], {**h["_source"], "_seq_no": h["_seq_no"],
                                                "_primary_term": h["_primary_term"]}) for h in hits]

    def claim(self, candidate: Claimed, worker: str, state: str) -> Claimed | None:
        """Move a PENDING task to `state` unless another worker got it first."""
        doc = {k: v for k, v in candidate.doc.items() if not k.startswith("_")}
        doc["celery"] = {**doc["celery"], "state": state, "worker": worker, "claimed": now_iso()}
        try:
            self.es.index(index=candidate.index, id=candidate.doc_id, document=doc,
                          if_seq_no=candidate.doc["_seq_no"], if_primary_term=candidate.doc["_primary_term"])
        except ConflictError:
            return None
        return Claimed(candidate.index, candidate.doc_id, doc)

    def update_celery(self, task: Claimed, **changes: Any) -> None:
        task.doc["celery"].update(changes)
        # On an error the worker carries on; the state is re-written at the next change.
        with contextlib.suppress(TransportError):
            self.es.update(index=task.index, id=task.doc_id, body={"doc": {"celery": changes}},
                           retry_on_conflict=3)
