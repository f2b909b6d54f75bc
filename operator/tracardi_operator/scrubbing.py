"""Secrets out of messages: scrub first, then shape (pure).

What lives here: `scrub` (every spelling of each secret replaced by `***`) and `one_line` (whitespace
collapsed, cut to a length). Shaping a message before scrubbing it hides secrets from the scrubbing: a
collapsed double space or tab no longer matches, and a cut through a secret leaves its start behind.
So every caller scrubs the raw text and only then shapes it.

The spellings a secret may have in a message: as is, with any run of whitespace where it has one (a
collapsed or re-indented copy), JSON-escaped (a tab as `\\t`, non-ASCII as `\\u00e4` when the body was
JSON text), and URL-encoded (a form body echoed back).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable

MASK = "***"


def spellings(secret: str) -> set[str]:
    """The literal forms of `secret` a message may carry (whitespace variants are matched by pattern)."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
    }
    return {form for form in forms if form}


def _pattern(secret: str) -> re.Pattern[str] | None:
    """`secret` with each whitespace run matching any whitespace run (or none where it was cut off)."""
    words = secret.split()
    if len(words) < 2 and secret == secret.strip():
        return None
    return re.compile(r"\s*".join(re.escape(word) for word in words))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every spelling of every secret (longest first) replaced by `***`."""
    for secret in sorted({s for s in secrets if s and not s.isspace()}, key=len, reverse=True):
        for form in sorted(spellings(secret), key=len, reverse=True):
            text = text.replace(form, MASK)
        pattern = _pattern(secret)
        if pattern is not None:
            text = pattern.sub(MASK, text)
    return text


def one_line(text: str, limit: int) -> str:
    """Whitespace collapsed to single spaces, cut to `limit` characters. Scrub before calling this."""
    return " ".join(text.split())[:limit]
