"""The environment of Tracardi's containers and of the Jobs (pure): Elasticsearch, Redis, the
installation token, telemetry, the spec's own variables, and the Elasticsearch CA mounted from its
Secret. Secrets only ever appear as secretKeyRef."""

from __future__ import annotations

from typing import Any

from tracardi_operator import versions
from tracardi_operator.builders.names import ServingComponent, api_service_url
from tracardi_operator.models import TracardiInstallation

TELEMETRY_VARIABLE = "PERFORMANCE_TRACKING"
CA_MOUNT_DIR = "/etc/tracardi/elasticsearch-ca"
CA_FILE_NAME = "ca.crt"
CA_VOLUME = "elasticsearch-ca"

# The Jobs' environment, as tracardi_operator.jobs.cli reads it (and the token as the Tracardi API reads
# it). Secrets reach a Job only as environment variables from secretKeyRefs, never as arguments.
ENV_ADMIN_USERNAME = "TRACARDI_ADMIN_USERNAME"  # installation.adminSecretRef, key username
ENV_ADMIN_PASSWORD = "TRACARDI_ADMIN_PASSWORD"  # installation.adminSecretRef, key password
ENV_JOB_INSTALLATION_TOKEN = "TRACARDI_INSTALLATION_TOKEN"  # installation.tokenSecretRef
ENV_INSTALLATION_TOKEN = "INSTALLATION_TOKEN"  # the same token, as the Tracardi API reads it
ENV_ES_HOSTS = "TRACARDI_ES_HOSTS"  # comma-separated, as ELASTIC_HOST
ENV_ES_VERIFY_CERTS = "TRACARDI_ES_VERIFY_CERTS"  # yes | no
ENV_ES_CA_FILE = "TRACARDI_ES_CA_FILE"
# From elasticsearch.credentialsSecretRef, each optional: keys username, password, apiKeyId, apiKey.
ENV_ES_USERNAME = "TRACARDI_ES_USERNAME"
ENV_ES_PASSWORD = "TRACARDI_ES_PASSWORD"
ENV_ES_API_KEY_ID = "TRACARDI_ES_API_KEY_ID"
ENV_ES_API_KEY = "TRACARDI_ES_API_KEY"


def _secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    reference: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        reference["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": reference}}


def _value_env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def elasticsearch_env(installation: TracardiInstallation) -> list[dict[str, Any]]:
    """ELASTIC_* variables as Tracardi reads them (docs/tracardi.md §6); the Jobs read the same."""
    es = installation.spec.elasticsearch
    env = [
        _value_env("ELASTIC_HOST", ",".join(es.hosts)),
        _value_env("ELASTIC_SCHEME", es.scheme),
        _value_env("ELASTIC_VERIFY_CERTS", _yes_no(es.verify_certs)),
    ]
    if es.credentials_secret_ref is not None:
        secret = es.credentials_secret_ref.name
        # All optional: the Secret holds either basic-auth or API-key keys.
        env += [
            _secret_env("ELASTIC_HTTP_AUTH_USERNAME", secret, "username", optional=True),
            _secret_env("ELASTIC_HTTP_AUTH_PASSWORD", secret, "password", optional=True),
            _secret_env("ELASTIC_API_KEY_ID", secret, "apiKeyId", optional=True),
            _secret_env("ELASTIC_API_KEY", secret, "apiKey", optional=True),
        ]
    if es.ca_secret_ref is not None:
        env.append(_value_env("ELASTIC_CA_FILE", f"{CA_MOUNT_DIR}/{CA_FILE_NAME}"))
    if es.index_shards is not None:
        env.append(_value_env("ELASTIC_INDEX_SHARDS", str(es.index_shards)))
    if es.index_replicas is not None:
        env.append(_value_env("ELASTIC_INDEX_REPLICAS", str(es.index_replicas)))
    return env


def redis_env(installation: TracardiInstallation) -> list[dict[str, Any]]:
    """REDIS_HOST and REDIS_PORT, always both: Tracardi 0.8.1 and 0.8.2.x take the port of the
    connection that login uses from REDIS_PORT (default 6379), not from the URL (docs/tracardi.md §6)."""
    redis = installation.spec.redis
    env = [_value_env("REDIS_HOST", redis.host), _value_env("REDIS_PORT", str(redis.port))]
    if redis.password_secret_ref is not None:
        env.append(_secret_env("REDIS_PASSWORD", redis.password_secret_ref.name, redis.password_secret_ref.key))
    return env


def token_env(installation: TracardiInstallation, name: str = ENV_INSTALLATION_TOKEN) -> dict[str, Any]:
    token = installation.spec.installation.token_secret_ref
    return _secret_env(name, token.name, token.key)


def job_elasticsearch_env(installation: TracardiInstallation) -> list[dict[str, Any]]:
    """TRACARDI_ES_* variables: how a Job reaches Elasticsearch to verify installs and migrations."""
    es = installation.spec.elasticsearch
    env = [
        _value_env(ENV_ES_HOSTS, ",".join(es.hosts)),
        _value_env(ENV_ES_VERIFY_CERTS, _yes_no(es.verify_certs)),
    ]
    if es.credentials_secret_ref is not None:
        secret = es.credentials_secret_ref.name
        env += [
            _secret_env(ENV_ES_USERNAME, secret, "username", optional=True),
            _secret_env(ENV_ES_PASSWORD, secret, "password", optional=True),
            _secret_env(ENV_ES_API_KEY_ID, secret, "apiKeyId", optional=True),
            _secret_env(ENV_ES_API_KEY, secret, "apiKey", optional=True),
        ]
    if es.ca_secret_ref is not None:
        env.append(_value_env(ENV_ES_CA_FILE, f"{CA_MOUNT_DIR}/{CA_FILE_NAME}"))
    return env


def admin_env(installation: TracardiInstallation) -> list[dict[str, Any]]:
    admin = installation.spec.installation.admin_secret_ref.name
    return [
        _secret_env(ENV_ADMIN_USERNAME, admin, "username"),
        _secret_env(ENV_ADMIN_PASSWORD, admin, "password"),
    ]


def telemetry_env(installation: TracardiInstallation, version: str) -> list[dict[str, Any]]:
    """PERFORMANCE_TRACKING=no where it means "no telemetry", and nowhere else.

    Tracardi up to 0.8.1 reads the variable as yes/no (default yes: reports to Tracardi's Sentry);
    0.8.2.x reads it as a Sentry DSN and refuses to start on anything else, `no` included
    (docs/tracardi.md §6). A value the user sets in spec.env wins either way.
    """
    if any(extra.name == TELEMETRY_VARIABLE for extra in installation.spec.env):
        return []
    parsed = versions.try_parse(version).version
    if parsed is None or (parsed.major, parsed.minor, parsed.patch) >= (0, 8, 2):
        return []
    return [_value_env(TELEMETRY_VARIABLE, "no")]


def component_env(
    installation: TracardiInstallation, component: ServingComponent, version: str
) -> list[dict[str, Any]]:
    """Environment of a Tracardi container at image tag `version`. TENANT_NAME is never set: a
    version-independent tenant makes the aliases of old and new version collide during an upgrade
    (docs/tracardi.md §4)."""
    if component == "gui":
        return [_value_env("API_URL", installation.spec.gui.api_url or api_service_url(installation))]
    env = [*elasticsearch_env(installation), *redis_env(installation), *telemetry_env(installation, version)]
    if component == "api":
        env += [_value_env("PRODUCTION", "no"), _value_env("EXPOSE_GUI_API", "yes"), token_env(installation)]
    elif component == "api-production":
        env += [_value_env("PRODUCTION", "yes"), _value_env("EXPOSE_GUI_API", "no"), token_env(installation)]
    env += [_value_env(extra.name, extra.value) for extra in installation.spec.env]
    return env


def ca_volume(installation: TracardiInstallation) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) that put the Elasticsearch CA at ELASTIC_CA_FILE, if one is configured."""
    ca = installation.spec.elasticsearch.ca_secret_ref
    if ca is None:
        return [], []
    volume = {
        "name": CA_VOLUME,
        "secret": {"secretName": ca.name, "items": [{"key": ca.key, "path": CA_FILE_NAME}]},
    }
    mount = {"name": CA_VOLUME, "mountPath": CA_MOUNT_DIR, "readOnly": True}
    return [volume], [mount]
