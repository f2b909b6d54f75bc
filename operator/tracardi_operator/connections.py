"""Connections to each installation's Elasticsearch: its Secrets read, its CA written to a file, and one
client per connection (hosts, TLS settings, credentials), shared by every installation that connects the
same way and kept while one does: a fleet on one cluster holds one connection pool, not one each."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tracardi_operator.elastic import ElasticAdapter, ElasticConnection, build_client
from tracardi_operator.kube import Kube
from tracardi_operator.models import TracardiInstallation

_SECRET_KEYS = ("username", "password", "apiKeyId", "apiKey")


log = logging.getLogger(__name__)

ConnectionKey = tuple[Any, ...]


@dataclass
class Connections:
    kube: Kube
    _adapters: dict[ConnectionKey, ElasticAdapter] = field(default_factory=dict)
    _used_by: dict[tuple[str, str], ConnectionKey] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def adapter(self, inst: TracardiInstallation) -> ElasticAdapter:
        """The installation's client: the one of its connection, built when no installation has used that
        connection yet (hosts, TLS settings and credentials as they are now; an absent Secret: none)."""
        es = inst.spec.elasticsearch
        secret: dict[str, str] = {}
        if es.credentials_secret_ref is not None:
            found = self.kube.read_secret(inst.namespace, es.credentials_secret_ref.name) or {}
            # One read of the Secret per pass, not one per key.
            secret = {k: found[k] for k in _SECRET_KEYS if k in found}
        ca_file = None
        if es.ca_secret_ref is not None:
            ca_file = self.kube.secret_to_file(inst.namespace, es.ca_secret_ref.name, es.ca_secret_ref.key)
        key = (tuple(es.hosts), es.verify_certs, ca_file, tuple(sorted(secret.items())))
        with self._lock:
            adapter = self._adapters.get(key)
            if adapter is None:
                adapter = ElasticAdapter(build_client(connection_of(inst, secret, ca_file)))
                self._adapters[key] = adapter
            previous = self._used_by.get((inst.namespace, inst.name))
            self._used_by[(inst.namespace, inst.name)] = key
            if previous is not None and previous != key:
                self._drop_unused(previous)
        return adapter

    def forget(self, namespace: str, name: str) -> None:
        """The installation is gone: its connection closes unless another installation uses it."""
        with self._lock:
            key = self._used_by.pop((namespace, name), None)
            if key is not None:
                self._drop_unused(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._adapters)

    def _drop_unused(self, key: ConnectionKey) -> None:
        if key in self._used_by.values():
            return
        adapter = self._adapters.pop(key, None)
        if adapter is not None:
            with contextlib.suppress(Exception):
                adapter.close()


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
