"""Bearer tokens of the simulated API, kept in Redis as Tracardi keeps them (docs/tracardi.md §8, §9).

A token is 40 hex digits; the same user gets the same token while it is valid; every authorised call
renews its TTL (30 min by default). Tokens outlive an API restart. Keys carry the version's
`<db>.<tenant>` so that versions sharing one Redis keep apart:
`<db>.<tenant>:token:<token>` → `{"username", "roles"}` and `<db>.<tenant>:user:<username>` → token.
Every call opens its own connection (`connect`), so a wrong host or port fails each login, as it does
in Tracardi; RedisError carries redis-py's text.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from devenv.simulator.redis_client import Redis, RedisError, RedisTarget


@dataclass
class Session:
    username: str
    roles: list[str]


class Store:
    """The few Redis commands the token store uses (a real connection, or a dict in unit tests)."""

    def get(self, key: str) -> str | None:
        raise NotImplementedError

    def set(self, key: str, value: str, ttl_ms: int) -> None:
        raise NotImplementedError

    def expire(self, key: str, ttl_ms: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


class RedisStore(Store):
    def __init__(self, target: RedisTarget) -> None:
        self.redis = Redis(target)

    def get(self, key: str) -> str | None:
        value = self.redis.call("GET", key)
        return value.decode() if isinstance(value, bytes) else None

    def set(self, key: str, value: str, ttl_ms: int) -> None:
        self.redis.call("SET", key, value, "PX", ttl_ms)

    def expire(self, key: str, ttl_ms: int) -> None:
        self.redis.call("PEXPIRE", key, ttl_ms)

    def close(self) -> None:
        self.redis.close()


@dataclass
class TokenStore:
    prefix: str
    """`<db>.<tenant>` of the API."""
    ttl: float
    connect: Callable[[], Store]

    @classmethod
    def on_redis(cls, prefix: str, ttl: float, target: RedisTarget) -> TokenStore:
        return cls(prefix, ttl, lambda: RedisStore(target))

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def issue(self, username: str, roles: list[str]) -> str:
        """The user's valid token (renewed), or a new one. Raises RedisError."""
        store = self.connect()
        try:
            user_key = f"{self.prefix}:user:{username}"
            token = store.get(user_key)
            if token is None or store.get(f"{self.prefix}:token:{token}") is None:
                token = secrets.token_hex(20)
            store.set(f"{self.prefix}:token:{token}", json.dumps({"username": username, "roles": roles}),
                      self._ttl_ms)
            store.set(user_key, token, self._ttl_ms)
            return token
        finally:
            store.close()

    def check(self, token: str) -> Session | None:
        """The session of a valid token, its TTL renewed; None when unknown or expired. Raises RedisError."""
        store = self.connect()
        try:
            raw = store.get(f"{self.prefix}:token:{token}")
            if raw is None:
                return None
            data = json.loads(raw)
            store.expire(f"{self.prefix}:token:{token}", self._ttl_ms)
            store.expire(f"{self.prefix}:user:{data['username']}", self._ttl_ms)
            return Session(str(data["username"]), [str(r) for r in data.get("roles") or []])
        finally:
            store.close()


__all__ = ["RedisError", "Session", "Store", "TokenStore"]
