"""The migration Job's Tracardi part on a rerun (a retry a person asked for) and when POST /migration
gets no clean answer: copies are never started twice, failed ones are started again."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.unit.test_jobs_flow import REQUEST, FakeMigrationApi, deadline, entries, quiet
from tracardi_operator.jobs.common import JobError
from tracardi_operator.jobs.migrate import run_tracardi_migration
from tracardi_operator.tracardi_api import MigrationEntry, TaskListing, TaskStatus, TracardiApiError, UpgradeTask


class RerunApi(FakeMigrationApi):
    """Each spawned copy task gets its own Celery id; ids in `failing` end FAILURE, others SUCCESS.
    `post_errors` are raised by the next POSTs (after queuing the work when `queued_anyway`)."""

    def __init__(self, failing_indices: Sequence[str] = (), post_errors: Sequence[int] = (),
                 queued_anyway: bool = False) -> None:
        super().__init__(entries(), combined=True)
        self.failing_indices = set(failing_indices)
        self.failing: set[str] = set()
        self.post_errors = list(post_errors)
        self.queued_anyway = queued_anyway
        self.spawned = 0

    def _spawn(self, context: str, spawned: Sequence[MigrationEntry]) -> None:
        for e in spawned:
            self.spawned += 1
            task_id = f"c{self.spawned}-{e.from_index}"
            if e.from_index in self.failing_indices:
                self.failing.add(task_id)
            self.tasks[context].insert(0, UpgradeTask(
                f"t{self.spawned}", task_id, f'Migration of "{e.from_index}"', None, e.from_index, e.to_index))

    def start_migration(self, from_db: str, tenant: str, ids: Sequence[str], context: str) -> str | None:
        if self.post_errors:
            status = self.post_errors.pop(0)
            if self.queued_anyway:
                super().start_migration(from_db, tenant, ids, context)
            raise TracardiApiError("POST", "/migration", status, "boom")
        return super().start_migration(from_db, tenant, ids, context)

    def task_status(self, task_id: str, context: str) -> TaskStatus:
        return TaskStatus(task_id, "FAILURE" if task_id in self.failing else "SUCCESS", None, None)


EVENT = "080.fa73a.tracardi-event-2023-1"


def test_a_rerun_after_failed_copies_starts_only_those_again() -> None:
    api = RerunApi(failing_indices=[EVENT])
    with pytest.raises(JobError) as info:
        run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert info.value.reason == "MigrationTaskFailed"
    assert api.posts == [("staging", ["same", "e1"])]
    api.failing_indices.clear()  # the cause was fixed; a person retries
    listed = run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert len(listed) == 3
    assert api.posts == [("staging", ["same", "e1"]), ("staging", ["e1"])]


def test_a_rerun_with_every_copy_done_posts_nothing() -> None:
    api = RerunApi()
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert len(api.posts) == 1


def test_a_post_answered_500_after_queuing_is_not_sent_again() -> None:
    api = RerunApi(post_errors=[500], queued_anyway=True)
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert len(api.posts) == 1
    assert api.spawned == 3


def test_a_post_answered_500_before_queuing_is_sent_again() -> None:
    api = RerunApi(post_errors=[500, 503])
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert api.posts == [("staging", ["same", "e1"])]
    assert api.spawned == 3


def test_a_post_refused_with_4xx_fails_at_once() -> None:
    api = RerunApi(post_errors=[422])
    with pytest.raises(JobError) as info:
        run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert info.value.reason == "ApiError"
    assert api.posts == []


def test_a_rerun_starts_entries_listed_only_now() -> None:
    api = RerunApi()
    all_entries = api.entries
    api.entries = all_entries[:2]  # the first run's listing left the partitioned entry out
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    api.entries = all_entries
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert api.posts == [("staging", ["same"]), ("staging", ["e1"])]


def test_verification_holds_a_source_to_what_it_had_when_the_copy_began() -> None:
    from tracardi_operator.jobs.migrate import held_to

    now = {"080.fa73a.tracardi-event-2026-11": 130, "080.fa73a.tracardi-flow": 3, "080.fa73a.tracardi-new": 2}
    cutoff = {"080.fa73a.tracardi-event-2026-11": 100, "080.fa73a.tracardi-flow": 4}
    required, grown = held_to(now, cutoff)
    assert required == {"080.fa73a.tracardi-event-2026-11": 100, "080.fa73a.tracardi-flow": 3,
                        "080.fa73a.tracardi-new": 0}
    assert grown == {"080.fa73a.tracardi-event-2026-11": 30, "080.fa73a.tracardi-flow": 0,
                     "080.fa73a.tracardi-new": 2}
    assert held_to(now, None) == (now, {})


class SlowWorkerApi(RerunApi):
    """POST /migration queues an orchestrator at once; the worker lists its copies only `delay` listings
    later."""

    def __init__(self, delay: int) -> None:
        super().__init__()
        self.delay = delay
        self.queued: list[tuple[str, list[MigrationEntry], int]] = []

    def start_migration(self, from_db: str, tenant: str, ids: Sequence[str], context: str) -> str | None:
        self.posts.append((context, list(ids)))
        self.tasks[context].insert(0, UpgradeTask("o", "o", "Migration plan orchestrator", None, None, None))
        self.queued.append((context, [e for e in self._mine(context) if e.id in ids], len(self.listings)))
        return "orchestrator"

    def upgrade_tasks(self, context: str, *, limit: int = 50, query: str | None = None) -> TaskListing:
        for queued in list(self.queued):
            if len(self.listings) >= queued[2] + self.delay:
                self.queued.remove(queued)
                self._spawn(queued[0], queued[1])
        return super().upgrade_tasks(context, limit=limit, query=query)


def test_a_rerun_after_a_post_whose_copies_are_not_listed_yet_waits_for_them() -> None:
    """The earlier run was killed right after its POST: the orchestrator is queued, its copies not yet
    listed. The rerun waits for them instead of posting again (which would copy everything twice)."""
    api = SlowWorkerApi(delay=4)
    api.start_migration("080", "fa73a", ["same", "e1"], "staging")  # the earlier run, then killed
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert api.posts == [("staging", ["same", "e1"])]
    assert api.spawned == 3
