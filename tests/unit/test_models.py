"""API models: parsing of user objects, defaults, validation, and the wire format."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.factories import installation_body, installation_spec
from tracardi_operator import models as m

METADATA: dict[str, Any] = {"namespace": "shop", "uid": "u-1", "generation": 2, "resourceVersion": "9"}


def test_minimal_spec_gets_every_default() -> None:
    spec = m.TracardiInstallationSpec.model_validate(installation_spec())
    assert spec.paused is False
    assert spec.elasticsearch.verify_certs is True
    assert spec.elasticsearch.credentials_secret_ref is None
    assert spec.upgrade == m.UpgradeSpec(allow_prerelease=False, strategy="Online", repair="Auto")
    assert spec.retention.enabled is True
    assert spec.images.api_repository == "tracardi/tracardi-api"
    assert spec.images.gui_repository == "tracardi/tracardi-gui"
    assert spec.images.worker_repository == "tracardi/update-worker"
    assert spec.images.pull_policy == "IfNotPresent"
    assert spec.replicas == m.ReplicasSpec(api=1, api_production=1, gui=1, worker=1)
    assert spec.resources.api is None
    assert spec.gui.api_url is None


def test_wire_format_is_camel_case_without_nulls() -> None:
    spec = m.TracardiInstallationSpec.model_validate(installation_spec())
    wire = spec.to_k8s()
    assert wire["installation"]["adminSecretRef"] == {"name": "acme-admin"}
    assert wire["upgrade"] == {"allowPrerelease": False, "strategy": "Online", "repair": "Auto"}
    assert wire["replicas"]["apiProduction"] == 1
    assert "credentialsSecretRef" not in wire["elasticsearch"]
    assert m.TracardiInstallationSpec.model_validate(wire) == spec


def test_snake_case_is_accepted_too() -> None:
    spec = m.TracardiInstallationSpec.model_validate(
        installation_spec(
            upgrade={"allow_prerelease": True}, elasticsearch={"hosts": ["https://a:9200"], "verify_certs": False}
        )
    )
    assert spec.upgrade.allow_prerelease is True
    assert spec.elasticsearch.verify_certs is False


def test_unknown_fields_are_ignored() -> None:
    spec = m.TracardiInstallationSpec.model_validate(installation_spec(futureField=1))
    assert "futureField" not in spec.to_k8s()


def test_assignments_are_validated() -> None:
    status = m.TracardiInstallationStatus()
    status.phase = "Ready"
    assert status.phase == "Ready"
    with pytest.raises(ValidationError):
        status.phase = "Sleepy"  # type: ignore[assignment]


def test_version_format_is_left_to_the_guard() -> None:
    # An unparseable version must reach the planner, which reports InvalidVersion as a condition.
    assert m.TracardiInstallationSpec.model_validate(installation_spec(version="latest-x")).version == "latest-x"


@pytest.mark.parametrize(
    "change",
    [
        {"elasticsearch": {"hosts": []}},
        {"elasticsearch": {"hosts": ["es:9200"]}},
        {"elasticsearch": {"hosts": ["http://a:9200,http://b:9200"]}},
        {"elasticsearch": {"hosts": ["http://a:9200", "https://b:9200"]}},
        {"elasticsearch": {"hosts": ["http://a:9200"], "indexShards": 0}},
        {"elasticsearch": {"hosts": ["http://a:9200"], "caSecretRef": {"name": "ca"}}},
        {"redis": {"url": "redis:6379"}},
        {"redis": {"url": "redis://user:secret@redis:6379"}},
        {"redis": {"url": "redis://:secret@redis:6379"}},
        {"redis": {"url": "redis://redis:port"}},
        {"redis": {"url": "redis://:6379"}},
        {"redis": {"url": "redis://r:6379", "passwordSecretRef": {"name": "r"}}},
        {"installation": {"adminSecretRef": {"name": "a"}}},
        {"installation": {"adminSecretRef": {"name": "Bad_Name"}, "tokenSecretRef": {"name": "t", "key": "k"}}},
        {"upgrade": {"strategy": "Sideways"}},
        {"upgrade": {"repair": "Maybe"}},
        {"replicas": {"api": 0}},
        {"replicas": {"worker": 0}},
        {"replicas": {"gui": -1}},
        {"images": {"pullPolicy": "Sometimes"}},
        {"gui": {"apiUrl": "tracardi.example.com"}},
        {"version": ""},
    ],
)
def test_invalid_specs_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        m.TracardiInstallationSpec.model_validate(installation_spec(**change))


def test_missing_required_sections() -> None:
    for section in ("version", "elasticsearch", "redis", "installation"):
        body = installation_spec()
        del body[section]
        with pytest.raises(ValidationError):
            m.TracardiInstallationSpec.model_validate(body)


def test_elasticsearch_scheme() -> None:
    assert m.ElasticsearchSpec(hosts=["https://a:9200", "https://b:9200"]).scheme == "https"
    assert m.ElasticsearchSpec(hosts=["http://a:9200"]).scheme == "http"


def test_zero_scales_production_and_gui() -> None:
    spec = m.TracardiInstallationSpec.model_validate(installation_spec(replicas={"apiProduction": 0, "gui": 0}))
    assert (spec.replicas.api_production, spec.replicas.gui) == (0, 0)


def test_resources_accept_quantities_as_numbers_and_strings() -> None:
    spec = m.TracardiInstallationSpec.model_validate(
        installation_spec(resources={"api": {"requests": {"cpu": 1, "memory": "512Mi"}, "limits": {"memory": "1Gi"}}})
    )
    assert spec.resources.api is not None
    assert spec.resources.api.to_k8s() == {"requests": {"cpu": 1, "memory": "512Mi"}, "limits": {"memory": "1Gi"}}


def test_whole_installation_object() -> None:
    body = installation_body(**METADATA)
    body["status"] = {
        "observedGeneration": 2,
        "phase": "Ready",
        "currentVersion": "0.8.1",
        "versions": [
            {
                "version": "0.8.0",
                "dbVersion": "080",
                "tenant": "fa73a",
                "state": "Superseded",
                "supersededAt": "2024-03-01T10:00:00Z",
            },
            {"version": "0.8.1", "dbVersion": "08x", "tenant": "01506", "state": "Current", "migratedFrom": "0.8.0"},
        ],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Installed",
                "message": "",
                "lastTransitionTime": "2024-03-01T10:00:00Z",
                "observedGeneration": 2,
            }
        ],
        "kopf": {"progress": {}},
    }
    installation = m.TracardiInstallation.model_validate(body)
    assert (installation.name, installation.namespace, installation.metadata.uid) == ("acme", "shop", "u-1")
    assert installation.status.versions[0].state == "Superseded"
    assert installation.status.versions[1].migrated_from == "0.8.0"
    wire = installation.status.to_k8s()
    assert wire["versions"][0]["supersededAt"] == "2024-03-01T10:00:00Z"
    assert wire["conditions"][0]["lastTransitionTime"] == "2024-03-01T10:00:00Z"
    assert "kopf" not in wire
    assert "upgrade" not in wire


def test_fresh_installation_has_empty_status() -> None:
    installation = m.TracardiInstallation.model_validate(installation_body(**METADATA))
    assert installation.status.to_k8s() == {"versions": [], "conditions": []}


def test_upgrade_status_round_trip() -> None:
    upgrade = m.UpgradeStatus(
        kind="Migrate",
        from_version="0.8.1",
        to_version="0.8.2.1",
        from_db_version="08x",
        to_db_version="0820",
        step="Verifying",
        jobs=[m.JobRecord(name="acme-migrate-08x-to-0820", purpose="Migrate", outcome="Succeeded")],
        verified=[
            m.VerifiedCount(
                context="production",
                resource="event",
                source_index="prod-08x.01506.tracardi-event-2024-1",
                destination_index="prod-0820.ffe49.tracardi-event-2024-q1",
                source_count=10,
                destination_count=10,
                ok=True,
            )
        ],
    )
    assert m.UpgradeStatus.model_validate(upgrade.to_k8s()) == upgrade
    assert upgrade.to_k8s()["verified"][0]["sourceIndex"].startswith("prod-08x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("168h", timedelta(days=7)),
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("0", timedelta()),
        ("0s", timedelta()),
        ("90s", timedelta(seconds=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("2us", timedelta(microseconds=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert m.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7d", "h", "1", "-1h", "1 h", "1h ", "1H", "1.h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        m.parse_duration(text)
    with pytest.raises(ValidationError):
        m.TracardiRetentionPolicySpec(min_age_after_superseded=text)


def test_policy_defaults() -> None:
    policy = m.TracardiRetentionPolicy.model_validate({"metadata": {"name": "default"}})
    spec = policy.spec
    assert (spec.priority, spec.keep_superseded_versions, spec.min_age_after_superseded, spec.dry_run) == (
        0,
        1,
        "168h",
        False,
    )
    assert spec.min_age == timedelta(days=7)
    assert spec.snapshot is None
    assert spec.max_deletions_per_run is None
    assert spec.namespace_selector is None
    assert policy.metadata.namespace is None


@pytest.mark.parametrize(
    "change",
    [{"keepSupersededVersions": -1}, {"maxDeletionsPerRun": 0}, {"snapshot": {"repository": ""}}, {"priority": "high"}],
)
def test_invalid_policies(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        m.TracardiRetentionPolicySpec.model_validate(change)


def test_policy_wire_format() -> None:
    spec = m.TracardiRetentionPolicySpec.model_validate(
        {"selector": {"matchLabels": {"tier": "prod"}}, "minAgeAfterSuperseded": "24h", "maxDeletionsPerRun": 50}
    )
    wire = spec.to_k8s()
    assert wire["selector"] == {"matchLabels": {"tier": "prod"}, "matchExpressions": []}
    assert wire["minAgeAfterSuperseded"] == "24h"
    assert wire["maxDeletionsPerRun"] == 50


def requirement(operator: str, *values: str) -> m.LabelSelectorRequirement:
    return m.LabelSelectorRequirement(key="tier", operator=operator, values=list(values) or None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        (m.LabelSelector(), {}, True),
        (m.LabelSelector(), {"a": "b"}, True),
        (m.LabelSelector(match_labels={"tier": "prod"}), {"tier": "prod", "x": "y"}, True),
        (m.LabelSelector(match_labels={"tier": "prod"}), {"tier": "dev"}, False),
        (m.LabelSelector(match_labels={"tier": "prod"}), {}, False),
        (m.LabelSelector(match_expressions=[requirement("In", "prod", "stage")]), {"tier": "stage"}, True),
        (m.LabelSelector(match_expressions=[requirement("In", "prod")]), {"tier": "dev"}, False),
        (m.LabelSelector(match_expressions=[requirement("In", "prod")]), {}, False),
        (m.LabelSelector(match_expressions=[requirement("NotIn", "prod")]), {"tier": "dev"}, True),
        (m.LabelSelector(match_expressions=[requirement("NotIn", "prod")]), {}, True),
        (m.LabelSelector(match_expressions=[requirement("NotIn", "prod")]), {"tier": "prod"}, False),
        (m.LabelSelector(match_expressions=[requirement("Exists")]), {"tier": ""}, True),
        (m.LabelSelector(match_expressions=[requirement("Exists")]), {}, False),
        (m.LabelSelector(match_expressions=[requirement("DoesNotExist")]), {}, True),
        (m.LabelSelector(match_expressions=[requirement("DoesNotExist")]), {"tier": "x"}, False),
        (
            m.LabelSelector(match_labels={"team": "a"}, match_expressions=[requirement("Exists")]),
            {"tier": "x"},
            False,
        ),
    ],
)
def test_label_selector(selector: m.LabelSelector, labels: dict[str, str], selected: bool) -> None:
    assert selector.matches(labels) is selected


@pytest.mark.parametrize(
    "body",
    [
        {"key": "tier", "operator": "In"},
        {"key": "tier", "operator": "NotIn", "values": []},
        {"key": "tier", "operator": "Exists", "values": ["x"]},
        {"key": "tier", "operator": "Near", "values": ["x"]},
        {"key": "", "operator": "Exists"},
    ],
)
def test_invalid_requirements(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        m.LabelSelectorRequirement.model_validate(body)


def test_resource_kinds() -> None:
    assert m.INSTALLATION.crd_name == "tracardiinstallations.tracardi.com"
    assert m.INSTALLATION.short_names == ("tri", "tracardi")
    assert m.INSTALLATION.scope == "Namespaced"
    assert m.RETENTION_POLICY.crd_name == "tracardiretentionpolicies.tracardi.com"
    assert m.RETENTION_POLICY.short_names == ("trp",)
    assert m.RETENTION_POLICY.scope == "Cluster"
    assert {kind.version for kind in m.RESOURCE_KINDS} == {"v1alpha1"}


def _fields(model: type[m.CamelModel], seen: set[type[Any]]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if model in seen:
        return found
    seen.add(model)
    for name, info in model.model_fields.items():
        found.append((f"{model.__name__}.{name}", info))
        for candidate in (*getattr(info.annotation, "__args__", ()), info.annotation):
            inner = getattr(candidate, "__args__", (candidate,))
            for kind in (*inner, candidate):
                if isinstance(kind, type) and issubclass(kind, m.CamelModel):
                    found += _fields(kind, seen)
    return found


@pytest.mark.parametrize("root", [m.TracardiInstallation, m.TracardiRetentionPolicy])
def test_every_field_has_a_description(root: type[m.CamelModel]) -> None:
    fields = _fields(root, set())
    assert len(fields) > 20
    missing = [name for name, info in fields if not info.description]
    assert missing == []


def test_credentials_in_the_redis_url_are_refused_with_a_pointer_to_the_secret() -> None:
    with pytest.raises(ValidationError) as error:
        m.RedisSpec(url="rediss://default:hunter2@redis:6380")
    assert "passwordSecretRef" in str(error.value)


@pytest.mark.parametrize(("url", "port"), [
    ("redis://redis:6379", 6379),
    ("redis://redis", 6379),
    ("rediss://redis.example:6380/0", 6380),
    ("redis://10.0.0.7:16379", 16379),
])
def test_redis_port(url: str, port: int) -> None:
    redis = m.RedisSpec(url=url)
    assert (redis.host, redis.port) == (url, port)


@pytest.mark.parametrize("host", ["http://es:99999", "http://es:0", "http://es:abc"])
def test_elasticsearch_hosts_with_an_impossible_port_are_invalid(host: str) -> None:
    """The schema's pattern admits them; the model refuses them (InvalidSpec) before a client is built."""
    from pydantic import ValidationError

    from tracardi_operator.models import ElasticsearchSpec

    with pytest.raises(ValidationError, match=r"hosts\.0"):
        ElasticsearchSpec.model_validate({"hosts": [host]})
    assert ElasticsearchSpec.model_validate({"hosts": ["http://es:9200"]}).hosts == ["http://es:9200"]


@pytest.mark.parametrize("selector", [
    {"matchLabels": {"bad key!": "x"}},
    {"matchLabels": {"tier": "not a value!"}},
    {"matchExpressions": [{"key": "bad key!", "operator": "Exists"}]},
    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["white space"]}]},
])
def test_a_selector_with_a_key_or_value_that_is_no_label_is_refused(selector: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        m.LabelSelector.model_validate(selector)


def test_label_keys_with_a_prefix_are_fine() -> None:
    selector = m.LabelSelector.model_validate({"matchLabels": {"tracardi.com/retention": "standard",
                                                               "kubernetes.io/metadata.name": "shop"}})
    assert selector.matches({"tracardi.com/retention": "standard", "kubernetes.io/metadata.name": "shop"})
