"""How Tracardi reaches its data: the Elasticsearch and Redis parts of a TracardiInstallation's spec,
with the URL checks admission cannot make.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Self

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from tracardi_operator.models.common import INT32, CamelModel, SecretKeyRef, SecretRef, cel_rule


def _valid_url_port(url: str) -> str:
    """The schema's pattern admits any port; a port out of range is caught here (InvalidSpec in status)
    rather than when the first Elasticsearch client is built."""
    port = urllib.parse.urlsplit(url).port  # raises ValueError when out of 0-65535 or not a number
    if port == 0:
        raise ValueError("port 0 is not a port Elasticsearch listens on")
    return url


ElasticsearchHost = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://[^\s,]+$"),
    AfterValidator(_valid_url_port),
]


class ElasticsearchSpec(CamelModel):
    """How every Tracardi component and Job reaches Elasticsearch (7.8 to 7.17)."""

    hosts: list[ElasticsearchHost] = Field(
        min_length=1,
        max_length=32,
        description=(
            "Elasticsearch URLs, scheme included, e.g. http://elasticsearch:9200. All hosts share one "
            "scheme, because Tracardi reads a single ELASTIC_SCHEME."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "self.all(h, h.startsWith('http://')) || self.all(h, h.startsWith('https://'))",
                    "all hosts must use the same scheme, http:// or https://",
                )
            ]
        },
    )
    credentials_secret_ref: SecretRef | None = Field(
        default=None,
        description=(
            "Secret with the Elasticsearch credentials: keys `username` and `password` for basic "
            "authentication, or `apiKeyId` and `apiKey` for an API key. Omit for an unsecured cluster."
        ),
    )
    verify_certs: bool = Field(
        default=True, description="Verify the TLS certificates of https hosts (ELASTIC_VERIFY_CERTS)."
    )
    ca_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the PEM CA bundle that signs the Elasticsearch certificates.",
    )
    index_shards: int | None = Field(
        default=None,
        ge=1,
        description="Primary shards per index Tracardi creates (ELASTIC_INDEX_SHARDS); Tracardi's default if unset.",
        json_schema_extra=INT32,
    )
    index_replicas: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Replica shards of each index Tracardi creates (ELASTIC_INDEX_REPLICAS); 0 on a single-node "
            "cluster keeps indices green. Tracardi's default if unset."
        ),
        json_schema_extra=INT32,
    )

    @model_validator(mode="after")
    def _one_scheme(self) -> Self:
        schemes = {host.split("://", 1)[0] for host in self.hosts}
        if len(schemes) > 1:
            raise ValueError("all hosts must use the same scheme, http:// or https://")
        return self

    @property
    def scheme(self) -> str:
        """The scheme shared by all hosts: `http` or `https`."""
        return self.hosts[0].split("://", 1)[0]


DEFAULT_REDIS_PORT = 6379
REDIS_CREDENTIALS_MESSAGE = (
    "the Redis URL must not carry credentials (user:password@host): it would be visible in every "
    "Deployment's environment; put the password in a Secret and name it in redis.passwordSecretRef"
)


class RedisSpec(CamelModel):
    """How the Tracardi API and worker reach Redis."""

    url: str = Field(
        min_length=9,
        max_length=2048,
        pattern=r"^rediss?://[^\s]+$",
        description=(
            "Redis URL, e.g. redis://redis:6379 (REDIS_HOST; its port, 6379 if omitted, also goes to "
            "REDIS_PORT). No credentials in it: the password belongs in passwordSecretRef."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [cel_rule("!self.contains('@')", REDIS_CREDENTIALS_MESSAGE)]
        },
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the Redis password (REDIS_PASSWORD); omit for none."
    )

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        if "@" in url:
            raise ValueError(REDIS_CREDENTIALS_MESSAGE)
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ValueError("the Redis URL's port must be a number from 0 to 65535") from None
        if not parts.hostname:
            raise ValueError("the Redis URL names no host, e.g. redis://redis:6379")
        return url

    @property
    def host(self) -> str:
        """REDIS_HOST: the URL as given (Celery and Tracardi 0.8.0 read host and port from it)."""
        return self.url

    @property
    def port(self) -> int:
        """REDIS_PORT: Tracardi 0.8.1 and 0.8.2.x take the port of the connection that login uses from
        this variable, not from the URL (docs/tracardi.md §6)."""
        return urllib.parse.urlsplit(self.url).port or DEFAULT_REDIS_PORT
