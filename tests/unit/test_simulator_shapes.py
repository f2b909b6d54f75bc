"""Answer shapes of the simulated API that are pure data: 422 bodies per version and the task listing's
query (docs/tracardi.md §8, §9)."""

from __future__ import annotations

from devenv.simulator import validation
from devenv.simulator.tasks import ORCHESTRATOR_NAME, copy_doc, orchestrator_doc, public_task, task_query


def test_422_bodies_are_pydantic_v1_before_082_and_v2_after() -> None:
    assert validation.missing("08x", ["body", "username"], None) == {
        "loc": ["body", "username"], "msg": "field required", "type": "value_error.missing"}
    v2 = validation.missing("0820", ["body", "username"], {"password": "x"})
    assert v2 == {"type": "missing", "loc": ["body", "username"], "msg": "Field required",
                  "input": {"password": "x"}, "url": "https://errors.pydantic.dev/2.5/v/missing"}
    for build in (validation.not_a_dict, validation.not_a_list, validation.not_an_int):
        assert set(build("0820", ["body"], 1)) == {"type", "loc", "msg", "input", "url"}
        assert set(build("080", ["body"], 1)) == {"loc", "msg", "type"}


def test_task_documents_have_id_equal_task_id_and_event_type_missing() -> None:
    schema = {"copy_index": {"from_index": "080.t.tracardi-flow", "to_index": "08x.u.tracardi-flow", "multi": False}}
    copy = copy_doc(schema, "staging", "08x.u")
    orchestrator = orchestrator_doc("c-1", [schema], "080", "t", "staging", "08x.u")
    for doc in (copy, orchestrator):
        assert doc["id"] == doc["task_id"] == doc["celery"]["id"]
        assert (doc["type"], doc["event_type"], doc["status"], doc["progress"]) == ("upgrade", "missing", "PROGRESS", 0)
        assert "celery" not in public_task(doc)
    assert orchestrator["name"] == ORCHESTRATOR_NAME
    assert copy["name"] == 'Migration of "080.t.tracardi-flow"'


def test_task_query_filters_by_type_and_by_part_of_the_name() -> None:
    assert task_query("upgrade", None) == {"bool": {"filter": [{"term": {"type": "upgrade"}}]}}
    q = task_query("upgrade", 'of "a*b')
    assert q["bool"]["filter"][1] == {"wildcard": {"name": {"value": '*of "a\\*b*', "case_insensitive": True}}}
