"""The install Job's check that Elasticsearch can hold Tracardi's templates (pure verdict), and the
operator setting that turns it off."""

from __future__ import annotations

import pytest

from tracardi_operator.jobs.cli import add_job_commands
from tracardi_operator.jobs.install import LACKS_FLATTENED, flattened_verdict
from tracardi_operator.settings import Settings

# The answer of an OSS Elasticsearch 7.10 to a simulated template with a `flattened` field.
OSS_ANSWER = {
    "error": {
        "root_cause": [{"type": "mapper_parsing_exception",
                        "reason": "No handler for type [flattened] declared on field [probe]"}],
        "type": "mapper_parsing_exception",
        "reason": "Failed to parse mapping [_doc]: No handler for type [flattened] declared on field [probe]",
    },
    "status": 400,
}
DEFAULT_ANSWER = {"template": {"settings": {}, "mappings": {"properties": {"probe": {"type": "flattened"}}}},
                  "overlapping": []}


def test_a_cluster_without_flattened_is_named_and_told_what_to_run() -> None:
    assert flattened_verdict(400, OSS_ANSWER) == LACKS_FLATTENED
    assert "default distribution" in LACKS_FLATTENED


def test_a_cluster_with_flattened_passes() -> None:
    assert flattened_verdict(200, DEFAULT_ANSWER) is None


@pytest.mark.parametrize("answer", [
    {"error": {"type": "security_exception", "reason": "action [indices:admin/index_template/simulate] is "
               "unauthorized"}, "status": 403},
    {"error": {"type": "illegal_argument_exception", "reason": "something else"}, "status": 400},
    "not json",
])
def test_an_answer_that_says_nothing_about_field_types_does_not_block(answer: object) -> None:
    assert flattened_verdict(400, answer) is None


def test_the_check_is_on_unless_turned_off() -> None:
    assert Settings.from_env({}).flattened_check
    assert not Settings.from_env({"TRACARDI_OPERATOR_FLATTENED_CHECK": "off"}).flattened_check
    with pytest.raises(ValueError, match="on or off"):
        Settings.from_env({"TRACARDI_OPERATOR_FLATTENED_CHECK": "maybe"})


def test_the_job_flag() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_job_commands(parser.add_subparsers(dest="job_command"))
    assert parser.parse_args(["install", "--api-url", "http://a"]).flattened_check
    assert not parser.parse_args(["install", "--api-url", "http://a", "--no-flattened-check"]).flattened_check
