"""The operator's own Kubernetes client (`kubeclient`) against devenv's real apiserver: client
certificates and tokens, TLS verification, errors, timeouts, and the request counter."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tracardi_operator.kube import Kube
from tracardi_operator.kubeclient import ApiError, Credentials, KubeClient, credentials_from_kubeconfig


def test_a_kubeconfig_with_a_client_certificate_connects_and_every_request_is_counted(devenv: Any) -> None:
    seen: list[tuple[str, str]] = []
    client = KubeClient.from_kubeconfig(devenv.kubeconfig, observe=lambda verb, resource: seen.append((verb, resource)))
    names = {n["metadata"]["name"] for n in client.request("GET", "/api/v1/namespaces")["items"]}
    assert {"default", "kube-system"} <= names
    client.request("GET", "/api/v1/namespaces/default/configmaps", query=[("limit", "1")])
    assert seen == [("GET", "namespaces"), ("GET", "configmaps")]


def test_errors_carry_status_and_reason_and_the_apiservers_details(kube_client: KubeClient, namespace: str) -> None:
    with pytest.raises(ApiError) as raised:
        kube_client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/absent")
    assert raised.value.status == 404
    assert str(raised.value) == "Kubernetes API 404 Not Found"
    assert raised.value.details()["reason"] == "NotFound"


def test_apply_creates_then_converges_and_merge_patch_writes(kube_client: KubeClient, namespace: str) -> None:
    kube = Kube(kube_client)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace},
          "data": {"a": "1"}}
    first = kube.apply(cm)
    again = kube.apply(cm)
    assert first["data"] == {"a": "1"}
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], "nothing changed"
    kube.apply({**cm, "data": {"a": "2", "b": "3"}})
    patched = kube_client.request("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/c",
                                  body={"data": {"b": None}}, content_type="application/merge-patch+json")
    assert patched["data"] == {"a": "2"}
    assert kube.delete("v1", "ConfigMap", namespace, "c") is True
    assert kube.delete("v1", "ConfigMap", namespace, "c") is False


def test_tls_is_verified_unless_the_kubeconfig_says_otherwise(devenv: Any) -> None:
    creds = credentials_from_kubeconfig([devenv.kubeconfig])
    strangers = Credentials(server=creds.server, client_cert_pem=creds.client_cert_pem,
                            client_key_pem=creds.client_key_pem)  # the system's CAs: not devenv's
    with pytest.raises(urllib3.exceptions.MaxRetryError) as raised:
        KubeClient(strangers, retries=0).request("GET", "/version")
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value.reason)
    insecure = Credentials(server=creds.server, insecure=True, client_cert_pem=creds.client_cert_pem,
                           client_key_pem=creds.client_key_pem)
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):  # said in the log, once
        assert KubeClient(insecure, retries=0).request("GET", "/version")["major"]


def _tls_server(tmp_path: Path, names: list[str], ips: list[str]) -> tuple[str, Any]:
    """A CA (its PEM returned) and an HTTPS server on 127.0.0.1 whose certificate names `names` and `ips`,
    answering every GET with `{}`."""
    import datetime as dt
    import http.server
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: x509.Name, signer: Any, ca: bool, sans: list[x509.GeneralName]) -> Any:
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = cert("test-ca", ca_key, ca_name, ca_key, True, [])
    served = cert("server", key, ca_name, ca_key, False, [x509.DNSName(n) for n in names]
                  + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips])
    (tmp_path / "server.pem").write_bytes(served.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))

    class Empty(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Empty)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return ca.public_bytes(serialization.Encoding.PEM).decode(), server


@pytest.mark.parametrize(("names", "ips", "host", "trusted"), [
    (["elsewhere.invalid"], [], "127.0.0.1", False),
    ([], ["10.9.9.9"], "127.0.0.1", False),
    (["elsewhere.invalid"], [], "localhost", False),
    ([], ["127.0.0.1"], "127.0.0.1", True),
    (["localhost"], [], "localhost", True),
])
def test_the_servers_name_is_checked_against_its_certificate(tmp_path: Path, names: list[str], ips: list[str],
                                                            host: str, trusted: bool) -> None:
    """Verification covers the name as well as the signature: a certificate from the right CA for
    another host is refused, by IP address or by DNS name."""
    ca, server = _tls_server(tmp_path, names, ips)
    client = KubeClient(Credentials(server=f"https://{host}:{server.server_address[1]}", ca_pem=ca), retries=0)
    try:
        if trusted:
            assert client.request("GET", "/version") == {}
        else:
            with pytest.raises(urllib3.exceptions.MaxRetryError) as raised:
                client.request("GET", "/version")
            assert "match" in str(raised.value.reason), raised.value.reason
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_file_is_read_again_for_every_request(kube_client: KubeClient, namespace: str,
                                                      tmp_path: Path, devenv: Any) -> None:
    """A pod's projected ServiceAccount token rotates: the client must send the file's current one."""
    kube_client.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                        body={"metadata": {"name": "reader"}})
    granted = kube_client.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/reader/token",
                                  body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                        "spec": {"expirationSeconds": 600}})
    token = tmp_path / "token"
    token.write_text(granted["status"]["token"])
    creds = credentials_from_kubeconfig([devenv.kubeconfig])
    client = KubeClient(Credentials(server=creds.server, ca_pem=creds.ca_pem, token_file=token), retries=0)
    whoami = client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"
    token.write_text("not-a-token")
    with pytest.raises(ApiError) as raised:
        client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                       body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert raised.value.status == 401


def test_a_server_that_never_answers_times_out(silent_server: int) -> None:
    client = KubeClient(Credentials(server=f"http://127.0.0.1:{silent_server}"), timeout=(1.0, 0.5), retries=1)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        client.request("GET", "/api/v1/namespaces")
    assert time.monotonic() - started < 5, "two attempts of half a second each, not forever"
