"""The operator's own client of the Kubernetes API: JSON over one urllib3 connection pool, and the
credentials it connects with (a pod's ServiceAccount, else a kubeconfig), which kopf's own connection
uses too (`handlers.login`).

Why not the official `kubernetes` package: the operator sends about twenty kinds of request, all of
them plain JSON, and that package's thousand generated model classes cost the process about 28 MiB
at import, even under -OO (the README's performance section). What lives here: `ApiError`,
`Credentials` and the ways to read them (`credentials_from_environment`: a pod's ServiceAccount or a
kubeconfig), and `KubeClient.request`.

Not supported, deliberately: kubeconfig users that authenticate by an exec plugin or an auth provider
(cloud CLIs); the operator runs in a pod with its ServiceAccount, and a kubeconfig for a run outside a
cluster names a token or a client certificate.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml

REQUEST_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds of every API request unless the call names its own: one hung connection
must not stall an installation's loop for good."""

RETRIES = 3
"""Attempts after a failed connection (any request) or a failed read (idempotent requests only)."""

RequestObserver = Callable[[str, str], None]
"""Told (verb, resource) of every request the client sends."""


class ApiError(Exception):
    """A request the apiserver answered with a status outside 2xx. Its text is the status and reason
    only: the body can echo the object sent, Secrets included, so it is kept but never printed."""

    def __init__(self, status: int, reason: str, body: bytes = b"") -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.body = body

    def __str__(self) -> str:
        return f"Kubernetes API {self.status} {self.reason}"

    def details(self) -> dict[str, Any]:
        """The apiserver's Status object, when the body is one (its `reason`, `message`, `details`)."""
        try:
            answer = json.loads(self.body)
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}


def resource_of(url: str) -> str:
    """The resource a Kubernetes API request addresses, for counting: `pods`, `deployments`,
    `tracardiinstallations/status`, ...; `other` for anything else (discovery, /version)."""
    path = urllib.parse.urlsplit(url).path.strip("/").split("/")
    if path[:1] == ["api"] and len(path) >= 3:
        rest = path[2:]
    elif path[:1] == ["apis"] and len(path) >= 4:
        rest = path[3:]
    else:
        return "other"
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    if not rest:
        return "other"
    return rest[0] + (f"/{rest[2]}" if len(rest) >= 3 else "")


@dataclass(frozen=True)
class Credentials:
    """Where the apiserver is and how to prove who we are. `token_file` is read again on every request
    (a projected ServiceAccount token rotates); `token` is fixed. Certificate and key are PEM text."""

    server: str
    ca_pem: str | None = None
    insecure: bool = False
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_cert_pem: str | None = None
    client_key_pem: str | None = field(default=None, repr=False)
    namespace: str | None = None

    def bearer(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None
        return self.token

    def authorization(self) -> dict[str, str]:
        token = self.bearer()
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.username and self.password:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}

    def ssl_context(self) -> ssl.SSLContext:
        """Verification on, against the CA named (the system's otherwise), unless the kubeconfig says
        insecure-skip-tls-verify; the client certificate loaded when there is one."""
        context = ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem else ssl.create_default_context()
        # urllib3 (1.26) matches the server's name against its certificate itself, IP addresses included,
        # and asks for that by a context that does not: ssl's own check cannot take an IP address here.
        context.check_hostname = False
        if self.insecure:
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_pem and self.client_key_pem:
            # ssl loads a certificate chain from files only: a private directory, gone once it is loaded.
            with tempfile.TemporaryDirectory(prefix="tracardi-operator-") as scratch:
                cert, key = Path(scratch) / "cert.pem", Path(scratch) / "key.pem"
                for path, text in ((cert, self.client_cert_pem), (key, self.client_key_pem)):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w") as f:
                        f.write(text)
                context.load_cert_chain(certfile=str(cert), keyfile=str(key))
        return context


class KubeconfigError(ValueError):
    """A kubeconfig the operator cannot connect with; the text says what to change."""


def _pem(data: str | None, path: str | None, base: Path) -> str | None:
    """PEM text from a kubeconfig's `*-data` (base64 of PEM) or from a file path (relative to the
    kubeconfig's own directory, as kubectl reads it), from its first `-----BEGIN` on: what comes before
    (comments, "Bag Attributes") ssl skips, and kopf, handed the same text, would not."""
    if data:
        text = base64.b64decode(data).decode()
    elif path:
        text = (base / os.path.expanduser(path)).read_text()
    else:
        return None
    start = text.find("-----BEGIN")
    return text[start:] if start >= 0 else text


_SECTIONS = (("contexts", "context"), ("clusters", "cluster"), ("users", "user"))


def _kubeconfig_file(path: Path) -> dict[str, Any]:
    """One kubeconfig file, its shape checked: named entries of contexts, clusters and users."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise KubeconfigError(f"kubeconfig {path}: not YAML ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path}: not a kubeconfig (a {type(doc).__name__}, not a mapping)")
    for section, key in _SECTIONS:
        entries = doc.get(section) or []
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get(key) or {}, dict) for e in entries):
            raise KubeconfigError(f"kubeconfig {path}: {section} is not a list of named {key} mappings")
    return doc


def _refuse_unsupported(where: str, ctx: Mapping[str, Any], cluster: Mapping[str, Any],
                        user: Mapping[str, Any]) -> None:
    """What the operator cannot connect with, named, rather than a connection that fails in a puzzling way."""
    if user.get("exec") or user.get("auth-provider"):
        raise KubeconfigError(
            f"kubeconfig {where}: user {ctx.get('user')!r} authenticates by an exec plugin or auth provider, which "
            "the operator does not run; give it a token or a client certificate, or run it in the cluster")
    if not cluster.get("server"):
        raise KubeconfigError(f"kubeconfig {where}: cluster {ctx['cluster']!r} has no server")
    if cluster.get("tls-server-name") or cluster.get("proxy-url"):
        raise KubeconfigError(
            f"kubeconfig {where}: cluster {ctx['cluster']!r} sets tls-server-name or proxy-url, which the operator "
            "does not support; name the server as its certificate does, and reach it directly")
    has_cert = bool(user.get("client-certificate-data") or user.get("client-certificate"))
    has_key = bool(user.get("client-key-data") or user.get("client-key"))
    if has_cert != has_key:
        raise KubeconfigError(f"kubeconfig {where}: user {ctx.get('user')!r} has a client certificate or key "
                              "without the other")


def credentials_from_kubeconfig(paths: Sequence[Path], context: str | None = None) -> Credentials:
    """The current context (or `context`) of one or more merged kubeconfig files: for each name, the
    first file that defines it wins, as kubectl merges $KUBECONFIG."""
    current: str | None = context
    named: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"contexts": {}, "clusters": {}, "users": {}}
    for path in paths:
        doc = _kubeconfig_file(path)
        current = current or doc.get("current-context")
        for section, key in _SECTIONS:
            for item in doc.get(section) or []:
                named[section].setdefault(str(item.get("name")), (item.get(key) or {}, path.parent))
    where = ", ".join(str(p) for p in paths)
    if not isinstance(current, str) or current not in named["contexts"]:
        raise KubeconfigError(f"kubeconfig {where}: no current context (or context {current!r} is not defined)")
    ctx, _ = named["contexts"][current]
    if not all(isinstance(ctx.get(k) or "", str) for k in ("cluster", "user", "namespace")):
        raise KubeconfigError(f"kubeconfig {where}: context {current!r} names its cluster, user or namespace "
                              "by something other than a name")
    if ctx.get("cluster") not in named["clusters"] or (ctx.get("user") and ctx["user"] not in named["users"]):
        raise KubeconfigError(f"kubeconfig {where}: context {current!r} names a cluster or user it does not define")
    cluster, cluster_dir = named["clusters"][ctx["cluster"]]
    user, user_dir = named["users"][ctx["user"]] if ctx.get("user") else ({}, Path("."))
    _refuse_unsupported(where, ctx, cluster, user)
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_pem(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), cluster_dir),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=user.get("token"),
        token_file=(user_dir / os.path.expanduser(user["tokenFile"])) if user.get("tokenFile") else None,
        username=user.get("username"),
        password=user.get("password"),
        client_cert_pem=_pem(user.get("client-certificate-data"), user.get("client-certificate"), user_dir),
        client_key_pem=_pem(user.get("client-key-data"), user.get("client-key"), user_dir),
        namespace=ctx.get("namespace"),
    )


def credentials_in_cluster(sa: Path, env: Mapping[str, str]) -> Credentials:
    """A pod's own: the apiserver of $KUBERNETES_SERVICE_HOST/PORT, its ServiceAccount's CA and token
    (the token read again on every request: it rotates)."""
    host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
    namespace = sa / "namespace"
    return Credentials(
        server=f"https://{'[' + host + ']' if ':' in host else host}:{port}",
        ca_pem=(sa / "ca.crt").read_text(), token_file=sa / "token",
        namespace=namespace.read_text().strip() if namespace.exists() else None,
    )


def credentials_from_environment(env: Mapping[str, str], sa: Path | None) -> Credentials:
    """In a pod (`sa`, the mounted ServiceAccount) unless $KUBECONFIG is set; else $KUBECONFIG or
    ~/.kube/config."""
    if sa is not None and not env.get("KUBECONFIG"):
        return credentials_in_cluster(sa, env)
    listed = [Path(os.path.expanduser(p)) for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p]
    if listed:  # as kubectl: files that do not exist are skipped, but never for another cluster's config
        paths = [p for p in listed if p.exists()]
        if not paths:
            raise KubeconfigError(f"$KUBECONFIG names no file that exists: {env['KUBECONFIG']}")
        return credentials_from_kubeconfig(paths)
    home = Path(os.path.expanduser("~/.kube/config"))
    if not home.exists():
        raise KubeconfigError("no Kubernetes credentials: not in a pod, $KUBECONFIG is not set and there is no "
                              "~/.kube/config")
    return credentials_from_kubeconfig([home])


class KubeClient:
    """Requests to one apiserver. Thread-safe (urllib3's pool is): the operator calls it from kopf's
    worker threads."""

    def __init__(self, credentials: Credentials, *, timeout: tuple[float, float] = REQUEST_TIMEOUT,
                 retries: int = RETRIES, pool_size: int = 16, observe: RequestObserver | None = None) -> None:
        self.credentials = credentials
        self.server = credentials.server
        self.timeout = timeout
        self.observe = observe
        https = self.server.startswith("https:")
        self.retries = retries
        self._pool = urllib3.PoolManager(
            num_pools=2, maxsize=pool_size, retries=self._retry(retries),
            **({"ssl_context": credentials.ssl_context()} if https else {}),
        )

    @staticmethod
    def _retry(total: int) -> urllib3.Retry:
        """Connections refused or timed out are tried again (any request: nothing was sent); reads that
        failed, and answers 429 and 503 with a Retry-After, for idempotent requests only (urllib3's default
        methods). `other=0`: any other error, such as a TLS failure (in the handshake or mid-answer), is
        not retried, so a POST is never sent twice and a certificate problem is told at once."""
        return urllib3.Retry(total=total, redirect=0, other=0, raise_on_status=False)

    @classmethod
    def from_kubeconfig(cls, path: str | Path, **kwargs: Any) -> KubeClient:
        return cls(credentials_from_kubeconfig([Path(path)]), **kwargs)

    def request(
        self, method: str, path: str, *, query: Sequence[tuple[str, str]] | Mapping[str, str] = (),
        body: Any = None, content_type: str = "application/json", accept: str = "application/json",
        timeout: tuple[float, float] | None = None, retries: int | None = None,
    ) -> Any:
        """Send one request; the answer's JSON (None for an empty one). ApiError for a status outside
        2xx; urllib3's errors (connection refused, timed out) as they are. `timeout` and `retries`
        override the client's for this request (the Lease's must end within its renewal deadline)."""
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(list(query.items()) if isinstance(query, Mapping) else list(query))
        if self.observe is not None:
            self.observe(method.upper(), resource_of(url))
        headers = {"Accept": accept, "User-Agent": "tracardi-operator", **self.credentials.authorization()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        connect, read = timeout or self.timeout
        answer = self._pool.request(method.upper(), url, body=data, headers=headers,
                                    timeout=urllib3.Timeout(connect=connect, read=read), redirect=False,
                                    retries=self._retry(self.retries if retries is None else retries))
        if not 200 <= answer.status < 300:
            raise ApiError(answer.status, answer.reason or "", answer.data or b"")
        return json.loads(answer.data) if answer.data else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pool.clear()
