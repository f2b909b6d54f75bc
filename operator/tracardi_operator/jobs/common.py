"""What both Jobs share: failures with a reason, the termination message, structured logs, deadlines.

A Job ends in one of two ways: a compact JSON result (stdout and the termination message) with exit
code 0, or a `JobError` whose CamelCase reason and one-line message go to the termination message as
`{"error": <reason>, "message": <text>}` with a non-zero exit code. Nothing here ever prints a secret:
messages are built from names and counts, and Tracardi's error details are scrubbed by its client.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tracardi_operator.reasons import Reason

TERMINATION_LIMIT = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


class JobError(Exception):
    """The Job cannot succeed; `reason` is CamelCase and stable, `message` says what to do."""

    def __init__(self, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def payload(self) -> dict[str, Any]:
        return {"error": self.reason, "message": self.message, **self.details}


def compact(payload: Mapping[str, Any], limit: int = TERMINATION_LIMIT) -> str:
    """Compact JSON of `payload` that fits `limit` bytes: a long message is cut, extras dropped."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=False)
    if len(text.encode()) <= limit:
        return text
    trimmed = {k: v for k, v in payload.items() if k in ("error", "message", "from", "to")}
    message = str(trimmed.get("message", ""))
    trimmed["truncated"] = True
    while True:
        text = json.dumps(trimmed, separators=(",", ":"))
        if len(text.encode()) <= limit or not message:
            return text
        message = message[: max(0, len(message) - max(64, len(text.encode()) - limit))]
        trimmed["message"] = message + "…"


def write_termination_message(text: str, environ: Mapping[str, str] | None = None) -> None:
    """Write the termination message when its directory is writable; never fail because of it."""
    env = os.environ if environ is None else environ
    path = Path(env.get("TERMINATION_MESSAGE_PATH") or DEFAULT_TERMINATION_PATH)
    try:
        if not os.access(path.parent, os.W_OK) and not os.access(path, os.W_OK):
            return
        path.write_text(text)
    except OSError:
        return


def finish(payload: Mapping[str, Any], out: TextIO = sys.stdout, environ: Mapping[str, str] | None = None) -> str:
    """Print the result and write it as termination message; returns the text."""
    text = compact(payload)
    write_termination_message(text, environ)
    print(text, file=out, flush=True)
    return text


@dataclass
class Log:
    """Structured one-line logs on stderr: `{"ts", "level", "event", ...fields}`. Never pass secrets."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    job: str = "job"

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        line = {"ts": round(time.time(), 3), "level": level, "job": self.job, "event": event, **fields}
        print(json.dumps(line, separators=(",", ":"), default=str), file=self.stream, flush=True)


@dataclass
class Deadline:
    """A bounded wait: how long is left, and a polling helper with exponential backoff."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.clock()

    @property
    def remaining(self) -> float:
        return max(0.0, self.start + self.seconds - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining <= 0.0

    def pauses(self, first: float = 0.5, cap: float = 10.0) -> Iterator[int]:
        """Yield attempt numbers 0, 1, 2, ... sleeping with backoff in between; the last attempt comes
        at the deadline, then the generator ends (the caller raises its timeout)."""
        attempt = 0
        delay = first
        while True:
            yield attempt
            attempt += 1
            if self.expired:
                return
            self.sleep(min(delay, max(self.remaining, 0.0)))
            delay = min(cap, delay * 2)


def env_required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name)
    if not value:
        raise JobError(Reason.CONFIGURATION_ERROR, f"environment variable {name} is not set")
    return value
