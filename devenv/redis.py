"""Runs Debian's `redis-server` for devenv: one process, a free port (never 6379), no persistence.

Tracardi keeps login tokens (and Celery's queue) in Redis; the simulator stores its tokens here, so a
wrong REDIS_HOST/REDIS_PORT fails the way it fails with the real Tracardi. Data directory
`data/redis` (nothing is saved there: no RDB snapshots, no AOF).
"""

from __future__ import annotations

import shutil
import socket

from devenv import procs
from devenv.paths import State

COMPONENT = "redis"
HOST = "127.0.0.1"
MISSING = ("redis-server not found on PATH: install Debian's package redis-server "
           "(`make debs`, or `apt-get install -y redis-server`)")


def server_binary() -> str:
    """The redis-server executable; a DevenvError saying how to install it when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        raise procs.DevenvError(MISSING)
    return path


def free_port() -> int:
    """A free port like the other components', never Redis's default (so the port rules are exercised)."""
    while True:
        port = procs.free_port(HOST)
        if port != 6379:
            return port


def url(port: int) -> str:
    return f"redis://{HOST}:{port}"


def argv(binary: str, state: State, port: int) -> list[str]:
    data = state.data / "redis"
    return [
        binary, "--port", str(port), "--bind", HOST, "--protected-mode", "no", "--daemonize", "no",
        "--save", "", "--appendonly", "no", "--dir", str(data), "--logfile", "",
        "--databases", "16", "--maxclients", "1000",
    ]


def start(state: State, port: int) -> str:
    """Start redis-server on `port`; its URL once it answers PING."""
    binary = server_binary()
    (state.data / "redis").mkdir(parents=True, exist_ok=True)
    procs.start(state, COMPONENT, argv(binary, state, port))
    procs.wait_for(state, COMPONENT, lambda: ping(HOST, port), 30, f"answering PING on {HOST}:{port}",
                   interval=0.1)
    return url(port)


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        return s.recv(64).startswith(b"+PONG")
