"""The install Job's and migration Job's decisions with a fake Tracardi API (no network), plus results."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.factories import FakeClock
from tracardi_operator.indices import VersionId
from tracardi_operator.jobs.common import Deadline, JobError, Log, compact, finish, write_termination_message
from tracardi_operator.jobs.install import AdminCredentials, run_install
from tracardi_operator.jobs.migrate import MigrationRequest, includes_production, match_tasks, run_tracardi_migration
from tracardi_operator.tracardi_api import (
    TASK_LISTING_LIMIT,
    InstallStatus,
    MigrationEntry,
    MigrationListing,
    TaskListing,
    TaskStatus,
    TracardiApi,
    TracardiApiError,
    UpgradeTask,
    VersionDetails,
)


def deadline(seconds: float = 100.0) -> Deadline:
    clock = FakeClock(0.0)
    return Deadline(seconds, clock=clock, sleep=clock.sleep)


def quiet() -> Log:
    return Log(stream=io.StringIO())


class FakeInstallApi(TracardiApi):
    def __init__(self, statuses: Sequence[InstallStatus], reject: TracardiApiError | None = None) -> None:
        super().__init__("http://fake")
        self.statuses = list(statuses)
        self.posts = 0
        self.reject = reject

    def healthcheck(self) -> None:
        return None

    def version_details(self) -> VersionDetails:
        return VersionDetails("0.8.1", "01506", "08x", False, None)

    def install_status(self) -> InstallStatus:
        return self.statuses[0] if len(self.statuses) == 1 else self.statuses.pop(0)

    def install(self, username: str, password: str, token: str, timeout: float | None = None) -> Any:
        self.posts += 1
        if self.reject:
            raise self.reject
        return [{"admin": True}]


CREDS = AdminCredentials("admin@x.y", "pw", "tok")
EMPTY = InstallStatus(False, False, None, None)
DONE = InstallStatus(True, True, True, None)


def test_install_posts_then_polls_until_schema_and_admin() -> None:
    api = FakeInstallApi([EMPTY, EMPTY, InstallStatus(True, False, None, None), DONE])
    result = run_install(api, CREDS, deadline(), quiet())
    assert result == {
        "version": "0.8.1",
        "dbVersion": "08x",
        "tenant": "01506",
        "schemaOk": True,
        "adminOk": True,
        "formOk": True,
    }
    assert api.posts == 1


def test_install_already_done_posts_nothing() -> None:
    api = FakeInstallApi([DONE])
    run_install(api, CREDS, deadline(), quiet())
    assert api.posts == 0


def test_install_schema_incomplete_after_two_posts() -> None:
    api = FakeInstallApi([InstallStatus(False, True, None, "index x failed")])
    with pytest.raises(JobError) as info:
        run_install(api, CREDS, deadline(), quiet(), settle=3.0)
    assert info.value.reason == "SchemaIncomplete"
    assert api.posts == 2


@pytest.mark.parametrize(
    ("status", "detail", "reason"),
    [
        (403, "Installation forbidden. Invalid installation token.", "InstallTokenRejected"),
        (403, "Admin user must have an e-mail", "AdminRejected"),
        (500, "boom", "ApiError"),
    ],
)
def test_install_rejections(status: int, detail: str, reason: str) -> None:
    api = FakeInstallApi([EMPTY], TracardiApiError("POST", "/install", status, detail))
    with pytest.raises(JobError) as info:
        run_install(api, CREDS, deadline(), quiet())
    assert info.value.reason == reason


class FakeMigrationApi(TracardiApi):
    """0.8.1-like (`combined`: one listing holds both contexts) or 0.8.2-like, with a worker that
    finishes each copy on the second status call."""

    def __init__(
        self, entries: list[MigrationEntry], combined: bool, fail: str | None = None, existing: bool = False
    ) -> None:
        super().__init__("http://fake")
        self.entries = entries
        self.combined = combined
        self.fail = fail
        self.posts: list[tuple[str, list[str]]] = []
        self.tasks: dict[str, list[UpgradeTask]] = {"staging": [], "production": []}
        self.polls: dict[str, int] = {}
        self.listings: list[tuple[int, str | None]] = []
        if existing:
            self._spawn("staging", entries)

    def _login(self) -> None:
        self._token = "t"

    def migrations(self) -> list[str]:
        return ["080"]

    def _mine(self, context: str) -> list[MigrationEntry]:
        if self.combined:
            return self.entries
        return [e for e in self.entries if e.production == (context == "production")]

    def migration_schemas(self, from_db: str, tenant: str, context: str) -> MigrationListing:
        return MigrationListing(False, tuple(self._mine(context)))

    def _spawn(self, context: str, entries: Sequence[MigrationEntry]) -> None:
        for e in entries:
            self.tasks[context].insert(
                0,
                UpgradeTask(
                    f"t{len(self.polls)}-{e.from_index}",
                    "c-" + e.from_index,
                    f'Migration of "{e.from_index}"',
                    None,
                    e.from_index,
                    e.to_index,
                ),
            )

    def start_migration(self, from_db: str, tenant: str, ids: Sequence[str], context: str) -> str | None:
        self.posts.append((context, list(ids)))
        self._spawn(context, [e for e in self._mine(context) if e.id in ids])
        return "orchestrator"

    def upgrade_tasks(self, context: str, *, limit: int = 50, query: str | None = None) -> TaskListing:
        # As Tracardi: the `limit` newest (50 unless asked), optionally only those whose name matches.
        tasks = [t for t in self.tasks[context] if query is None or query in t.name]
        self.listings.append((limit, query))
        return TaskListing(tuple(tasks[:limit]), complete=len(tasks[:limit]) < limit)

    def task_status(self, task_id: str, context: str) -> TaskStatus:
        self.polls[task_id] = self.polls.get(task_id, 0) + 1
        if self.fail and task_id == "c-" + self.fail:
            return TaskStatus(task_id, "FAILURE", None, None)
        return TaskStatus(task_id, "SUCCESS" if self.polls[task_id] > 1 else "PROGRESS", None, None)


def entries() -> list[MigrationEntry]:
    return [
        MigrationEntry("same", "080.fa73a.tracardi-flow", "08x.01506.tracardi-flow", False, False, "reindex", False),
        MigrationEntry(
            "same", "prod-080.fa73a.tracardi-flow", "prod-08x.01506.tracardi-flow", False, True, "reindex", False
        ),
        MigrationEntry(
            "e1", "080.fa73a.tracardi-event-2023-1", "08x.01506.tracardi-event-2023-1", True, False, "reindex", False
        ),
    ]


REQUEST = MigrationRequest(VersionId("080", "fa73a"), VersionId("08x", "01506"), repair=True, merged_suffix=None)


def test_081_listing_with_both_contexts_is_posted_once() -> None:
    api = FakeMigrationApi(entries(), combined=True)
    listed = run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert api.posts == [("staging", ["same", "e1"])]
    assert len(listed) == 3


def test_082_listing_is_posted_per_context() -> None:
    api = FakeMigrationApi(entries(), combined=False)
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert [context for context, _ in api.posts] == ["staging", "production"]


def test_a_rerun_never_posts_again() -> None:
    api = FakeMigrationApi(entries(), combined=True, existing=True)
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert api.posts == []


def many_entries(count: int) -> list[MigrationEntry]:
    """A migration of `count` copies, e.g. 84 as 0.8.0 → 0.8.1 with partitions in both contexts."""
    return [
        MigrationEntry(f"id{n}", f"080.fa73a.tracardi-r{n}", f"08x.01506.tracardi-r{n}", False, n % 2 == 1,
                       "reindex", False)
        for n in range(count)
    ]


def test_a_rerun_of_more_copies_than_tracardi_lists_by_default_posts_nothing() -> None:
    api = FakeMigrationApi(many_entries(84), combined=True, existing=True)
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert api.posts == []
    assert all(limit > 84 for limit, _ in api.listings)


def test_a_first_run_of_more_copies_than_tracardi_lists_by_default_sees_every_copy_finish() -> None:
    api = FakeMigrationApi(many_entries(84), combined=True)
    listed = run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert len(api.posts) == 1
    assert len(listed) == 84
    assert all(api.polls.get("c-" + e.from_index) for e in many_entries(84))


def old_tasks(count: int) -> list[UpgradeTask]:
    return [UpgradeTask(f"o{n}", f"o{n}", f'Migration of "073.x.tracardi-r{n}"', None, f"073.x.tracardi-r{n}", None)
            for n in range(count)]


def test_a_full_listing_is_read_again_entry_by_entry() -> None:
    api = FakeMigrationApi(many_entries(10), combined=True, existing=True)
    api.tasks["staging"].extend(old_tasks(TASK_LISTING_LIMIT))  # older tasks fill the first listing
    run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert api.posts == []
    assert {query for _, query in api.listings if query} == {f'Migration of "{e.from_index}"' for e in many_entries(10)}


def test_a_listing_that_cannot_be_proven_complete_starts_nothing() -> None:
    entries_ = many_entries(3)
    api = FakeMigrationApi(entries_, combined=True)
    name = f'Migration of "{entries_[0].from_index}"'
    api.tasks["staging"] = [UpgradeTask(f"x{n}", f"x{n}", name, None, None, None) for n in range(TASK_LISTING_LIMIT)]
    with pytest.raises(JobError) as info:
        run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert info.value.reason == "TaskListingIncomplete"
    assert entries_[0].from_index in info.value.message
    assert api.posts == []


def test_a_failed_copy_names_the_index() -> None:
    api = FakeMigrationApi(entries(), combined=True, fail="080.fa73a.tracardi-event-2023-1")
    with pytest.raises(JobError, match=re.escape("080.fa73a.tracardi-event-2023-1")) as info:
        run_tracardi_migration(api, REQUEST, deadline(), quiet())
    assert info.value.reason == "MigrationTaskFailed"


def test_copies_that_never_finish_time_out() -> None:
    api = FakeMigrationApi(entries(), combined=True)
    api.task_status = lambda task_id, context: TaskStatus(task_id, "PROGRESS", None, None)  # type: ignore[method-assign]
    with pytest.raises(JobError) as info:
        run_tracardi_migration(api, REQUEST, deadline(30.0), quiet())
    assert info.value.reason == "Timeout"


def test_source_not_offered() -> None:
    api = FakeMigrationApi(entries(), combined=True)
    request = MigrationRequest(VersionId("073", "x"), VersionId("08x", "01506"), True, None)
    with pytest.raises(JobError) as info:
        run_tracardi_migration(api, request, deadline(), quiet())
    assert info.value.reason == "MigrationNotOffered"


def test_match_tasks_takes_the_newest_and_falls_back_to_the_name() -> None:
    (flow, _, _) = entries()
    newer = UpgradeTask("2", "c2", "", None, flow.from_index, flow.to_index)
    older = UpgradeTask("1", "c1", "", None, flow.from_index, flow.to_index)
    assert match_tasks([flow], [newer, older])[flow.from_index] is newer
    named = UpgradeTask("3", "c3", f'Migration of "{flow.from_index}"', None, None, None)
    assert match_tasks([flow], [named])[flow.from_index] is named
    other = UpgradeTask("4", "c4", "", None, "prod-" + flow.from_index, None)
    assert match_tasks([flow], [other]) == {}


def test_compact_result_fits_the_termination_message() -> None:
    huge = {"error": "MigrationIncomplete", "message": "x" * 10000, "incomplete": ["y" * 100] * 100}
    text = compact(huge)
    assert len(text.encode()) <= 4096
    assert json.loads(text)["error"] == "MigrationIncomplete"
    assert compact({"a": 1}) == '{"a":1}'


def test_termination_message_is_written_when_possible(tmp_path: Path) -> None:
    target = tmp_path / "term"
    out = io.StringIO()
    finish({"ok": True}, out=out, environ={"TERMINATION_MESSAGE_PATH": str(target)})
    assert target.read_text() == '{"ok":true}'
    assert out.getvalue() == '{"ok":true}\n'
    write_termination_message("x", {"TERMINATION_MESSAGE_PATH": str(tmp_path / "missing" / "dir" / "t")})


def test_deadline_pauses_are_bounded() -> None:
    limit = deadline(10.0)
    attempts = list(limit.pauses(first=1.0, cap=4.0))
    assert attempts[-1] < 10
    assert limit.expired


def test_production_entries_are_known_by_their_name_not_by_the_flag() -> None:
    # 0.8.2.1 lists its prod- entries with production: false; its staging listing holds none of them.
    staging = MigrationEntry("s", "08x.01506.tracardi-flow", "0820.ffe49.tracardi-flow", False, False, "reindex", False)
    flagged_false = MigrationEntry("p", "prod-08x.01506.tracardi-flow", "prod-0820.ffe49.tracardi-flow", False, False,
                                   "reindex", False)
    assert not includes_production([staging])
    assert includes_production([staging, flagged_false])
