"""How the operator reads its credentials (`kubeclient`): kubeconfig files (merged, relative paths,
what it refuses and why) and a pod's ServiceAccount."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from tracardi_operator.kubeclient import (
    Credentials,
    KubeconfigError,
    credentials_from_environment,
    credentials_from_kubeconfig,
    credentials_in_cluster,
)

CA = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"


def _write(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def _config(user: dict[str, object], cluster: dict[str, object] | None = None, current: str = "dev",
            namespace: str | None = None) -> dict[str, object]:
    context: dict[str, object] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    return {"current-context": current, "contexts": [{"name": "dev", "context": context}],
            "clusters": [{"name": "c", "cluster": cluster or {"server": "https://k:6443/",
                                                              "certificate-authority-data": base64.b64encode(
                                                                  CA.encode()).decode()}}],
            "users": [{"name": "u", "user": user}]}


def test_a_token_user_with_inline_ca(tmp_path: Path) -> None:
    creds = credentials_from_kubeconfig([_write(tmp_path / "k", _config({"token": "t0k"}, namespace="shop"))])
    assert creds.server == "https://k:6443"
    assert creds.ca_pem == CA
    assert creds.authorization() == {"Authorization": "Bearer t0k"}
    assert creds.namespace == "shop"
    assert not creds.insecure


def test_file_paths_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.pem").write_text(CA)
    (tmp_path / "pki" / "me.pem").write_text("cert")
    (tmp_path / "pki" / "me.key").write_text("key")
    (tmp_path / "token").write_text("from-file\n")
    path = _write(tmp_path / "k", _config({"client-certificate": "pki/me.pem", "client-key": "pki/me.key",
                                           "tokenFile": "token"},
                                          {"server": "https://k", "certificate-authority": "pki/ca.pem"}))
    creds = credentials_from_kubeconfig([path])
    assert (creds.ca_pem, creds.client_cert_pem, creds.client_key_pem) == (CA, "cert", "key")
    assert creds.bearer() == "from-file"
    (tmp_path / "token").write_text("rotated")
    assert creds.bearer() == "rotated", "read again on every request"


def test_merged_files_first_definition_wins(tmp_path: Path) -> None:
    first = _write(tmp_path / "a", {"current-context": "dev", "users": [{"name": "u", "user": {"token": "first"}}]})
    second = _write(tmp_path / "b", _config({"token": "second"}, current="other"))
    creds = credentials_from_kubeconfig([first, second])
    assert creds.bearer() == "first"
    assert creds.server == "https://k:6443"


@pytest.mark.parametrize(("user", "cluster", "current", "says"), [
    ({"exec": {"command": "aws"}}, None, "dev", "exec plugin"),
    ({"auth-provider": {"name": "gcp"}}, None, "dev", "exec plugin or auth provider"),
    ({"token": "t"}, None, "missing", "no current context"),
    ({"token": "t"}, {"certificate-authority-data": "eA=="}, "dev", "has no server"),
    ({"token": "t"}, {"server": "https://k", "tls-server-name": "api.internal"}, "dev", "tls-server-name"),
    ({"token": "t"}, {"server": "https://k", "proxy-url": "http://proxy:3128"}, "dev", "proxy-url"),
    ({"client-certificate-data": "eA=="}, None, "dev", "without the other"),
])
def test_what_the_operator_cannot_connect_with_is_named(tmp_path: Path, user: dict[str, object],
                                                        cluster: dict[str, object] | None, current: str,
                                                        says: str) -> None:
    with pytest.raises(KubeconfigError, match=says):
        credentials_from_kubeconfig([_write(tmp_path / "k", _config(user, cluster, current))])


def test_basic_auth_and_no_credentials() -> None:
    assert Credentials(server="https://k", username="a", password="b").authorization() == {
        "Authorization": "Basic " + base64.b64encode(b"a:b").decode()}
    assert Credentials(server="https://k").authorization() == {}


def test_in_a_pod_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text(CA)
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("operators")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = credentials_in_cluster(tmp_path, env)
    assert creds.server == "https://[fd00::1]:443"
    assert (creds.ca_pem, creds.bearer(), creds.namespace) == (CA, "sa-token", "operators")
    assert credentials_from_environment(env, tmp_path) == creds


def test_kubeconfig_wins_over_the_pod_and_nothing_at_all_is_an_error(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "k", _config({"token": "t0k"}))
    assert credentials_from_environment({"KUBECONFIG": str(path)}, tmp_path).bearer() == "t0k"
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    with pytest.raises(KubeconfigError, match="no Kubernetes credentials"):
        credentials_from_environment({}, None)


def test_a_kubeconfig_variable_naming_no_file_never_falls_back_to_the_home_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in $KUBECONFIG must not connect to whatever cluster ~/.kube/config names (production)."""
    (tmp_path / ".kube").mkdir()
    _write(tmp_path / ".kube" / "config", _config({"token": "prod"}))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert credentials_from_environment({}, None).bearer() == "prod"
    with pytest.raises(KubeconfigError, match="names no file that exists: /typo"):
        credentials_from_environment({"KUBECONFIG": "/typo"}, None)
    mine = _write(tmp_path / "mine", _config({"token": "mine"}))
    assert credentials_from_environment({"KUBECONFIG": f"/typo:{mine}"}, None).bearer() == "mine"


def test_what_is_not_a_kubeconfig_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken").write_text("clusters: [unclosed\n")
    with pytest.raises(KubeconfigError, match="not YAML"):
        credentials_from_kubeconfig([tmp_path / "broken"])
    (tmp_path / "list").write_text("- a\n- b\n")
    with pytest.raises(KubeconfigError, match="not a mapping"):
        credentials_from_kubeconfig([tmp_path / "list"])


def test_a_context_without_a_user_connects_anonymously(tmp_path: Path) -> None:
    doc = _config({"token": "t"})
    doc["contexts"] = [{"name": "dev", "context": {"cluster": "c"}}]
    assert credentials_from_kubeconfig([_write(tmp_path / "k", doc)]).authorization() == {}


def test_pem_text_starts_at_its_first_block_and_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    """A CA file with "Bag Attributes" or comments before the certificate: ssl skips them, kopf (handed the
    same text for its own connection) would try to read them as base64."""
    (tmp_path / "ca.pem").write_text("Bag Attributes\n    friendlyName: ca\n" + CA)
    creds = credentials_from_kubeconfig([_write(tmp_path / "k", _config(
        {"token": "s3cret", "client-key-data": base64.b64encode(b"# key\n-----BEGIN KEY-----\nk\n").decode(),
         "client-certificate-data": base64.b64encode(b"-----BEGIN CERT-----\nc\n").decode()},
        {"server": "https://k", "certificate-authority": "ca.pem"}))])
    assert creds.ca_pem == CA
    assert creds.client_key_pem == "-----BEGIN KEY-----\nk\n"
    assert "s3cret" not in repr(creds)
    assert "BEGIN KEY" not in repr(creds)


@pytest.mark.parametrize("doc", [
    {"current-context": "dev", "users": [None]},
    {"current-context": "dev", "contexts": {"dev": {}}},
    {"current-context": "dev", "contexts": [{"name": "dev", "context": {"cluster": "c", "user": {"token": "t"}}}]},
    {"current-context": ["dev"], "contexts": []},
])
def test_malformed_entries_are_named_not_crashed_on(tmp_path: Path, doc: dict[str, object]) -> None:
    with pytest.raises(KubeconfigError):
        credentials_from_kubeconfig([_write(tmp_path / "k", doc)])


def test_kopf_logs_in_with_the_token_alone_when_there_is_one(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf prefers a user name and password to a token, the operator's client the token: both must use
    the same one."""
    from tracardi_operator import handlers

    path = _write(tmp_path / "k", _config({"token": "t0k", "username": "u", "password": "p"}))
    monkeypatch.setenv("KUBECONFIG", str(path))
    info = handlers.login()
    assert (info.token, info.scheme, info.username, info.password) == ("t0k", "Bearer", None, None)
    basic = _write(tmp_path / "b", _config({"username": "u", "password": "p"}))
    monkeypatch.setenv("KUBECONFIG", str(basic))
    info = handlers.login()
    assert (info.token, info.username, info.password) == (None, "u", "p")
