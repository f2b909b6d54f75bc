"""Retention when Elasticsearch does not answer: ClusterIdentified=False names it (nothing is deleted),
written once rather than on every pass."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.unit.test_builders import make_installation
from tracardi_operator.listings import Listings
from tracardi_operator.models import Condition
from tracardi_operator.retention_pass import RetentionPass


class Unreachable:
    def read_inventory(self) -> Any:
        raise ConnectionError("connection refused")


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.patches.append(patch)


def test_elasticsearch_down_is_reported_once_and_nothing_is_deleted() -> None:
    kube = FakeKube()
    retention = RetentionPass(kube, Listings(lambda kind: ("", [])))  # type: ignore[arg-type]
    inst = make_installation()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    retention.run(inst, {"status": {}}, Unreachable(), now)  # type: ignore[arg-type]
    assert len(kube.patches) == 1
    (cond,) = [c for c in kube.patches[0]["conditions"] if c["type"] == "ClusterIdentified"]
    assert (cond["status"], cond["reason"]) == ("False", "ElasticsearchUnavailable")
    assert "Elasticsearch did not answer" in cond["message"]
    assert "deletes nothing" in cond["message"]
    # The next pass reads the status it wrote: nothing new to say.
    inst.status.conditions = [Condition.model_validate(c) for c in kube.patches[0]["conditions"]]
    retention.run(inst, {"status": {"conditions": kube.patches[0]["conditions"]}}, Unreachable(),  # type: ignore[arg-type]
                  now + dt.timedelta(seconds=20))
    assert len(kube.patches) == 1
