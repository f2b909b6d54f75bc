"""The Job → operator contract: what the Jobs write is what the operator reads."""

from __future__ import annotations

import json

from tracardi_operator import jobresults as jr
from tracardi_operator.jobs.common import JobError, compact
from tracardi_operator.jobs.install import install_result
from tracardi_operator.tracardi_api import InstallStatus, VersionDetails


def test_the_install_result_a_job_writes_is_the_one_the_operator_reads() -> None:
    details = VersionDetails(version="0.8.2", tenant="ffe49", db_version="0820", production=False, installed=None)
    written = install_result(details, InstallStatus(schema_ok=True, admin_ok=True, form_ok=None, warning=None))
    read = jr.parse_install(json.loads(compact(written)))
    assert read is not None
    assert (read.db_version, read.tenant, read.schema_ok, read.admin_ok) == ("0820", "ffe49", True, True)
    assert written["dbVersion"] == "0820", "camelCase on the wire"


def test_a_migration_result_round_trips_and_a_truncated_one_still_parses() -> None:
    written = jr.MigrationResult.model_validate({
        "from": "08x", "to": "0820",
        "contexts": {"staging": {"resources": 35, "sourceDocs": 10, "destDocs": 9, "collapsedIds": 1}},
        "repaired": {"staging": {"event": {"copies": 2, "total": 5, "created": 5, "present": 0}}},
        "mergedSuffix": "2026-q4",
    }).dump()
    assert written["from"] == "08x"
    read = jr.parse_migration(json.loads(compact(written)))
    assert read is not None
    assert read.contexts["staging"].collapsed_ids == 1
    assert read.repaired["staging"]["event"].created == 5
    truncated = json.loads(compact({**written, "padding": "x" * 5000}))
    assert truncated.get("truncated") is True
    cut = jr.parse_migration(truncated)
    assert cut is not None
    assert (cut.from_db, cut.to_db, cut.contexts) == ("08x", "0820", {})


def test_a_failure_is_read_with_its_reason_and_nonsense_is_no_result() -> None:
    failure = jr.parse_failure(JobError("MigrationIncomplete", "staging/event: 3 missing").payload())
    assert failure is not None
    assert (failure.error, failure.message) == ("MigrationIncomplete", "staging/event: 3 missing")
    assert jr.parse_failure({"message": "no reason"}) is None
    assert jr.parse_install(None) is None
    assert jr.parse_migration({"contexts": "not an object"}) is None
