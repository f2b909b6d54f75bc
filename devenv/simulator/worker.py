"""The simulated `tracardi/update-worker`: polls the task index for queued work and runs the copies.

An orchestrator becomes one copy task per schema (and SUCCESS once they are queued, as in Tracardi);
a copy is one asynchronous Elasticsearch `_reindex` (with the entry's painless script), polled through
`_tasks` until it completes. Like Tracardi, a copy is SUCCESS when the finished task has no top-level
`error`: per-document `failures` are not looked at. `reindex_to_one_index` entries write into one
destination per resource named after the run-time quarter (see migration.merged_destination).
Polling starts at TRACARDI_SIM_POLL seconds and backs off to 5 s while idle.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from typing import Any

from elasticsearch import Elasticsearch, TransportError

from devenv.simulator.es import client
from devenv.simulator.mappings import Json
from devenv.simulator.migration import merged_destination
from devenv.simulator.naming import CONTEXTS, Context
from devenv.simulator.settings import Settings
from devenv.simulator.tasks import Claimed, TaskStore, copy_doc, now_iso, queue_name

log = logging.getLogger("tracardi.worker")

MAX_IDLE_INTERVAL = 5.0
SIMULATED_FAILURE = "Simulated failure (TRACARDI_SIM_FAULTS=task-fails)"


class Worker:
    def __init__(self, settings: Settings, es: Elasticsearch | None = None, name: str | None = None) -> None:
        self.settings = settings
        self.es = es or client(settings)
        self.store = TaskStore(self.es, settings.version, settings.namespace)
        self.name = name or f"celery@{socket.gethostname()}-{os.getpid()}"
        self.stopping = threading.Event()

    def run_forever(self) -> None:
        interval = self.settings.poll_interval
        log.info("worker %s polling %s", self.name, [self.store.index(c) for c in CONTEXTS])
        while not self.stopping.is_set():
            try:
                busy = self.run_once()
            except TransportError as e:
                log.warning("worker: Elasticsearch error, backing off: %s", e)
                busy = False
            interval = self.settings.poll_interval if busy else min(interval * 2, MAX_IDLE_INTERVAL)
            self.stopping.wait(interval)

    def run_once(self) -> bool:
        """Expand queued orchestrators, then run queued copies. True when there was work."""
        busy = False
        for context in CONTEXTS:
            for candidate in self.store.pending(context, "orchestrator"):
                task = self.store.claim(candidate, self.name, "STARTED")
                if task is not None:
                    self._expand(task, context)
                    busy = True
        claimed: list[Claimed] = []
        for context in CONTEXTS:
            for candidate in self.store.pending(context, "copy"):
                task = self.store.claim(candidate, self.name, "PROGRESS")
                if task is not None:
                    claimed.append(task)
        if claimed:
            self._run_copies(claimed)
            busy = True
        return busy

    def _expand(self, orchestrator: Claimed, context: Context) -> None:
        schemas: list[Json] = orchestrator.doc["params"]["schemas"]
        queue = queue_name(self.settings.namespace)
        self.store.put_many(context, [copy_doc(schema, context, queue) for schema in schemas])
        self.store.update_celery(orchestrator, state="SUCCESS", finished=now_iso(),
                                 current=len(schemas), total=len(schemas))

    def _run_copies(self, tasks: list[Claimed]) -> None:
        running: list[tuple[Claimed, str]] = []
        for task in tasks:
            if self.settings.faults.task_fails:
                self.store.update_celery(task, state="FAILURE", error=SIMULATED_FAILURE, finished=now_iso())
                continue
            try:
                es_task = self._start_reindex(task.doc["params"])
            except TransportError as e:
                self.store.update_celery(task, state="FAILURE", error=str(e), finished=now_iso())
                continue
            running.append((task, es_task))
        while running:
            still: list[tuple[Claimed, str]] = []
            for task, es_task in running:
                if not self._poll(task, es_task):
                    still.append((task, es_task))
            running = still
            if running:
                time.sleep(0.3)

    def _start_reindex(self, schema: Json) -> str:
        copy = schema["copy_index"]
        dest = copy["to_index"]
        if schema.get("worker") == "reindex_to_one_index":
            dest = merged_destination(dest, dt.date.today(), self.settings.faults.wrong_quarter)
        body: Json = {"source": {"index": copy["from_index"]}, "dest": {"index": dest}}
        if copy.get("script"):
            body["script"] = {"lang": "painless", "source": copy["script"]}
        log.info("reindex %s -> %s", copy["from_index"], dest)
        answer = self.es.reindex(body=body, wait_for_completion=False, refresh=True)
        return str(answer["task"])

    def _poll(self, task: Claimed, es_task: str) -> bool:
        """Update the copy's state from its Elasticsearch task; True when it has finished."""
        try:
            info: dict[str, Any] = self.es.tasks.get(task_id=es_task)
        except TransportError as e:
            self.store.update_celery(task, state="FAILURE", error=str(e), finished=now_iso())
            return True
        status = info.get("task", {}).get("status", {})
        current = int(status.get("created", 0)) + int(status.get("updated", 0))
        total = int(status.get("total", 0))
        if not info.get("completed"):
            self.store.update_celery(task, current=current, total=total)
            return False
        if "error" in info:
            self.store.update_celery(task, state="FAILURE", error=str(info["error"])[:2000], finished=now_iso(),
                                     current=current, total=total)
        else:
            # Tracardi does not look at response.failures: neither do we (docs/tracardi.md §8).
            self.store.update_celery(task, state="SUCCESS", finished=now_iso(), current=current, total=total,
                                     result=info.get("response", {}))
        return True
