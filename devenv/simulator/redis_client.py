"""A tiny synchronous Redis client (RESP2 over one TCP connection per use), and where each version connects.

Enough for the simulator's tokens: AUTH, PING, SET with PX, GET, PEXPIRE. Connection errors read as
redis-py's (`Error 111 connecting to h:6379. Connection refused.`), because Tracardi shows that text.

Where Tracardi connects (docs/tracardi.md §9 "Redis port"): 0.8.0 uses the REDIS_HOST URL as it is;
0.8.1 and 0.8.2.x take the host from REDIS_HOST but the port from REDIS_PORT (default 6379), with
REDIS_PASSWORD when set.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO
from urllib.parse import urlsplit

DEFAULT_URL = "redis://localhost:6379"
DEFAULT_PORT = 6379

Reply = bytes | int | str | list["Reply"] | None


class RedisError(Exception):
    """A connection failure or an error reply; the message is what redis-py would say."""


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    password: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def target_for(db_version: str, env: Mapping[str, str]) -> RedisTarget:
    """Where a version's login connection goes, from REDIS_HOST, REDIS_PORT and REDIS_PASSWORD (pure).
    A REDIS_PORT that is not a number raises ValueError (Tracardi fails at start-up)."""
    raw = env.get("REDIS_HOST", "").strip() or DEFAULT_URL
    parsed = urlsplit(raw if "://" in raw else f"redis://{raw}")
    host = parsed.hostname or "localhost"
    password = env.get("REDIS_PASSWORD", "") or None
    if db_version == "080":
        return RedisTarget(host, parsed.port or DEFAULT_PORT, parsed.password or password)
    port_text = env.get("REDIS_PORT", "").strip()
    port = int(port_text) if port_text else DEFAULT_PORT
    if not 0 < port < 65536:
        raise ValueError(f"REDIS_PORT {port} is not a port")
    return RedisTarget(host, port, password)


def encode(*args: str | bytes | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def read_reply(stream: BinaryIO) -> Reply:
    """One RESP2 reply; an error reply raises RedisError with its text."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise RedisError("Connection closed by server.")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = stream.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(stream) for _ in range(n)]
    raise RedisError(f"Protocol Error: {line!r}")


class Redis:
    """One connection: `with Redis(target) as r: r.call("GET", key)`."""

    def __init__(self, target: RedisTarget, timeout: float = 5.0) -> None:
        self.target = target
        try:
            self._sock = socket.create_connection((target.host, target.port), timeout=timeout)
        except TimeoutError:
            raise RedisError("Timeout connecting to server") from None
        except OSError as e:
            code = e.errno if e.errno is not None else (e.args[0] if e.args else "")
            text = e.strerror or str(e)
            raise RedisError(f"Error {code} connecting to {target}. {text}.") from None
        self._stream = self._sock.makefile("rb")
        if target.password:
            self.call("AUTH", target.password)

    def call(self, *args: str | bytes | int) -> Reply:
        try:
            self._sock.sendall(encode(*args))
            return read_reply(self._stream)
        except OSError as e:
            raise RedisError(f"Error while reading from {self.target} : {e}") from None

    def close(self) -> None:
        self._stream.close()
        self._sock.close()

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
