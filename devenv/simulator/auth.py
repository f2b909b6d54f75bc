"""Bearer tokens of the simulated API (tracardi-facts.md §8 "Auth and errors", "Token").

Tracardi keeps tokens in Redis; here they live in the API process: a token is 40 hex digits, the same
user gets the same token while it is valid, and every authorised call renews its TTL (30 min). A restart
of the API forgets its tokens (callers log in again).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Session:
    username: str
    roles: list[str]
    expires: float


@dataclass
class TokenStore:
    ttl: float
    clock: Callable[[], float] = time.monotonic
    _by_token: dict[str, Session] = field(default_factory=dict)
    _by_user: dict[str, str] = field(default_factory=dict)
    _salt: str = field(default_factory=lambda: secrets.token_hex(16))

    def issue(self, username: str, roles: list[str]) -> str:
        now = self.clock()
        token = self._by_user.get(username)
        if token is None or token not in self._by_token or self._by_token[token].expires <= now:
            token = hashlib.sha1(f"{self._salt}:{username}:{now}".encode(), usedforsecurity=False).hexdigest()
            self._by_user[username] = token
        self._by_token[token] = Session(username, roles, now + self.ttl)
        return token

    def check(self, token: str) -> Session | None:
        """The session of a valid token, its TTL renewed; None when unknown or expired."""
        session = self._by_token.get(token)
        now = self.clock()
        if session is None or session.expires <= now:
            self._by_token.pop(token, None)
            return None
        session.expires = now + self.ttl
        return session
