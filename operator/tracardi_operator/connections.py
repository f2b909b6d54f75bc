"""Connections to each installation's Elasticsearch: its Secrets read, its CA written to a file, and one
client per installation and settings, kept while they stay the same."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator.elastic import ElasticAdapter, ElasticConnection, build_client
from tracardi_operator.kube import Kube
from tracardi_operator.models import TracardiInstallation

_SECRET_KEYS = ("username", "password", "apiKeyId", "apiKey")


@dataclass
class Connections:
    kube: Kube
    _adapters: dict[tuple[Any, ...], ElasticAdapter] = field(default_factory=dict)

    def adapter(self, inst: TracardiInstallation) -> ElasticAdapter:
        """The installation's client, built again when its hosts, TLS settings or credentials changed (an
        absent Secret: no credentials)."""
        es = inst.spec.elasticsearch
        secret: dict[str, str] = {}
        if es.credentials_secret_ref is not None:
            found = self.kube.read_secret(inst.namespace, es.credentials_secret_ref.name) or {}
            # One read of the Secret per pass, not one per key.
            secret = {k: found[k] for k in _SECRET_KEYS if k in found}
        ca_file = None
        if es.ca_secret_ref is not None:
            ca_file = self.kube.secret_to_file(inst.namespace, es.ca_secret_ref.name, es.ca_secret_ref.key)
        key = (inst.namespace, inst.name, tuple(es.hosts), es.verify_certs, ca_file, tuple(sorted(secret.items())))
        adapter = self._adapters.get(key)
        if adapter is None:
            for old in [k for k in self._adapters if k[:2] == key[:2]]:
                self._adapters.pop(old)
            adapter = ElasticAdapter(build_client(connection_of(inst, secret, ca_file)))
            self._adapters[key] = adapter
        return adapter


def connection_of(
    inst: TracardiInstallation, secret: Mapping[str, str] | None, ca_file: str | None
) -> ElasticConnection:
    es = inst.spec.elasticsearch
    secret = secret or {}
    return ElasticConnection(
        hosts=tuple(es.hosts), username=secret.get("username"), password=secret.get("password"),
        api_key_id=secret.get("apiKeyId"), api_key=secret.get("apiKey"), verify_certs=es.verify_certs,
        ca_file=ca_file,
    )
