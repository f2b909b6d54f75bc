"""Small pieces shared by the stdlib HTTP clients (Tracardi's API, Elasticsearch in the Jobs)."""

from __future__ import annotations

import http.client
import json
import urllib.error
from typing import Any


def decode(raw: bytes) -> Any:
    """A JSON body, or its text when it is not JSON, or None when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def read_error(error: urllib.error.HTTPError) -> bytes:
    """The body of an error answer; empty when the connection broke while reading it."""
    try:
        return error.read() or b""
    except (OSError, http.client.HTTPException):
        return b""
