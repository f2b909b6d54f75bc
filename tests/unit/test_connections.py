"""`connections`: one Elasticsearch client per connection (hosts, TLS settings, credentials), shared by the
installations that connect the same way, closed when the last of them goes or connects another way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.factories import installation_spec
from tracardi_operator.connections import Connections
from tracardi_operator.models import TracardiInstallation


@dataclass
class Secrets:
    values: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.values.get((namespace, name))

    def secret_to_file(self, namespace: str, name: str, key: str) -> str | None:
        return None


def inst(namespace: str, name: str, hosts: list[str]) -> TracardiInstallation:
    spec: dict[str, Any] = installation_spec()
    spec["elasticsearch"] = {"hosts": hosts, "credentialsSecretRef": {"name": "es"}}
    return TracardiInstallation.model_validate({
        "apiVersion": "tracardi.com/v1alpha1", "kind": "TracardiInstallation",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def test_installations_that_connect_the_same_way_share_one_client() -> None:
    secrets = Secrets({("a", "es"): {"username": "u", "password": "p"}, ("b", "es"): {"username": "u", "password": "p"},
                       ("c", "es"): {"username": "other", "password": "p"}})
    conns = Connections(secrets)  # type: ignore[arg-type]
    one = conns.adapter(inst("a", "acme", ["http://es:9200"]))
    assert conns.adapter(inst("b", "shop", ["http://es:9200"])) is one, "same hosts and credentials"
    assert conns.adapter(inst("c", "blog", ["http://es:9200"])) is not one, "other credentials"
    assert conns.adapter(inst("a", "acme", ["http://es2:9200"])) is not one, "other hosts"
    assert len(conns) == 3, "b/shop still uses the first client"
    conns.forget("b", "shop")
    assert len(conns) == 2, "nobody uses the first client any more: closed and dropped"
    conns.forget("c", "blog")
    conns.forget("a", "acme")
    assert len(conns) == 0


def test_changed_credentials_give_a_new_client_and_drop_the_old() -> None:
    secrets = Secrets({("a", "es"): {"username": "u", "password": "old"}})
    conns = Connections(secrets)  # type: ignore[arg-type]
    first = conns.adapter(inst("a", "acme", ["http://es:9200"]))
    secrets.values[("a", "es")] = {"username": "u", "password": "new"}
    second = conns.adapter(inst("a", "acme", ["http://es:9200"]))
    assert second is not first
    assert len(conns) == 1
