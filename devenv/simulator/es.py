"""The Elasticsearch client the simulator uses, built from ELASTIC_* settings, and small helpers on it."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from devenv.simulator.settings import Settings


def client(settings: Settings) -> Elasticsearch:
    return connect(settings.es_hosts, settings.es_auth, settings.es_verify_certs)


def connect(hosts: list[str], auth: tuple[str, str] | None = None, verify_certs: bool = True) -> Elasticsearch:
    kwargs: dict[str, Any] = {"timeout": 60, "retry_on_timeout": True, "max_retries": 2}
    if auth:
        kwargs["http_auth"] = auth
    if any(h.startswith("https://") for h in hosts):
        kwargs["verify_certs"] = verify_certs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Elasticsearch(hosts, **kwargs)


def existing_indices(es: Elasticsearch, pattern: str) -> list[str]:
    """Names of the indices matching a wildcard pattern (none when nothing matches)."""
    try:
        rows: Any = es.cat.indices(index=pattern, h="index", format="json", expand_wildcards="all")
    except NotFoundError:
        return []
    return sorted(str(r["index"]) for r in rows)


def existing_templates(es: Elasticsearch, pattern: str) -> list[str]:
    try:
        body: Any = es.indices.get_index_template(name=pattern)
    except NotFoundError:
        return []
    return sorted(str(t["name"]) for t in body.get("index_templates", []))


def existing_aliases(es: Elasticsearch, names: Iterable[str]) -> set[str]:
    wanted = list(names)
    if not wanted:
        return set()
    try:
        body = es.indices.get_alias(name=",".join(wanted), ignore_unavailable=True)
    except NotFoundError as e:
        body = e.info if isinstance(e.info, dict) else {}
    found: set[str] = set()
    for index, data in body.items():
        if isinstance(data, dict):
            found.update(data.get("aliases", {}).keys())
        del index
    return found
