"""`kubectl logs` for pod processes: the kubelet's GET /containerLogs/{ns}/{pod}/{container} over HTTPS,
answered from the output files in `.devenv/pods/`. The certificate is `.devenv/pki/kubelet.crt` when the
cluster made one, else a self-signed one generated once under `.devenv/nodeagent/`. The apiserver does
not verify it (no --kubelet-certificate-authority) and this server does not check client certificates:
it listens on 127.0.0.1 only."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("nodeagent.logs")

# (namespace, pod, container, previous) -> (file, start, end or None, still running) or None when unknown
LogLocator = Callable[[str, str, str, bool], tuple[Path, int, int | None, bool] | None]


def ensure_certificate(pki: Path, own_dir: Path) -> tuple[Path, Path]:
    crt, key = pki / "kubelet.crt", pki / "kubelet.key"
    if crt.exists() and key.exists():
        return crt, key
    crt, key = own_dir / "serving.crt", own_dir / "serving.key"
    if crt.exists() and key.exists():
        return crt, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    own_dir.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devenv-nodeagent")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    key.chmod(0o600)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key


def select(data: bytes, tail_lines: int | None, limit_bytes: int | None) -> bytes:
    if tail_lines is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
    if limit_bytes is not None:
        data = data[:limit_bytes]
    return data


class LogServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, locate: LogLocator, cert: Path, key: Path, stop: threading.Event) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.locate = locate
        self.stop = stop

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="logs", daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    server: LogServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._plain(404, b"not found\n")
            return
        _, ns, pod, container = parts
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        previous = q.get("previous") == "true"
        found = self.server.locate(ns, pod, container, previous)
        if found is None:
            self._plain(404, f"no logs for {ns}/{pod}/{container}\n".encode())
            return
        path, start, end, _running = found
        tail = int(q["tailLines"]) if q.get("tailLines", "").lstrip("-").isdigit() else None
        limit = int(q["limitBytes"]) if q.get("limitBytes", "").isdigit() else None
        try:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read() if end is None else f.read(max(0, end - start))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(select(data, tail, limit))
                if q.get("follow") != "true" or end is not None:
                    return
                while not self.server.stop.is_set():
                    more = f.read()
                    if more:
                        self.wfile.write(more)
                        self.wfile.flush()
                        continue
                    found = self.server.locate(ns, pod, container, False)
                    if found is None or not found[3] or found[1] != start:
                        return
                    time.sleep(0.5)
        except FileNotFoundError:
            self._plain(404, b"log file is gone\n")
        except (BrokenPipeError, ConnectionResetError):
            return

    def _plain(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
