"""`tracardi-operator job install|migrate ...`: the Jobs' command line, exit codes and result output.

`add_job_commands(subparsers)` adds the `install` and `migrate` commands to an argparse subparsers
object (the lead hooks it under `job`); `run_job(args)` runs the chosen one and returns the exit code:
0 on success, 1 on a JobError (reason in the termination message), 2 on an unexpected crash.
`python -m tracardi_operator.jobs.cli install|migrate ...` runs the same without the operator's CLI.

Secrets come only from the environment (TRACARDI_ADMIN_USERNAME, TRACARDI_ADMIN_PASSWORD,
TRACARDI_INSTALLATION_TOKEN, TRACARDI_ES_*), never from arguments, and are never printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from tracardi_operator.indices import VersionId
from tracardi_operator.jobs.common import Deadline, JobError, Log, env_required, finish
from tracardi_operator.jobs.es import es_from_env, unavailable
from tracardi_operator.jobs.install import AdminCredentials, run_install
from tracardi_operator.jobs.migrate import MigrationRequest, run_migrate
from tracardi_operator.reasons import Reason
from tracardi_operator.scrubbing import scrub
from tracardi_operator.tracardi_api import TracardiApi

_SUFFIX = re.compile(r"^\d{4}-(?:q[1-4]|\d{1,2}|year)$")


def _suffix(value: str) -> str:
    if not _SUFFIX.match(value):
        raise argparse.ArgumentTypeError("expected a partition suffix such as 2026-q4")
    return value


def add_job_commands(subparsers: Any) -> None:
    """Add `install` and `migrate` (with their options) to an argparse `add_subparsers()` result."""
    install = subparsers.add_parser("install", help="install a Tracardi version and verify it")
    install.add_argument("--api-url", required=True, help="the new version's API (GUI/staging mode)")
    install.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole Job")
    install.add_argument(
        "--no-flattened-check",
        dest="flattened_check",
        action="store_false",
        help="do not check that Elasticsearch knows the flattened field type (for Tracardi stand-ins only)",
    )
    install.set_defaults(job_command="install")

    migrate = subparsers.add_parser("migrate", help="migrate both contexts, repair and verify")
    migrate.add_argument("--api-url", required=True, help="the new version's API (GUI/staging mode)")
    migrate.add_argument("--from-db", required=True)
    migrate.add_argument("--from-tenant", required=True)
    migrate.add_argument("--to-db", required=True)
    migrate.add_argument("--to-tenant", required=True)
    migrate.add_argument("--repair", choices=("Auto", "Off"), default="Auto")
    migrate.add_argument(
        "--merged-suffix",
        type=_suffix,
        default=None,
        help="quarter partition of the merged profile (and the entity) destination, decided once by the operator",
    )
    migrate.add_argument("--timeout", type=float, default=3600.0, help="seconds for the whole Job")
    migrate.set_defaults(job_command="migrate")


def run_job(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    command = getattr(args, "job_command", None)
    log = Log(job=str(command))
    try:
        if command == "install":
            result = _install(args, env, log)
        elif command == "migrate":
            result = _migrate(args, env, log)
        else:
            raise JobError(Reason.USAGE_ERROR, "expected the job command install or migrate")
    except JobError as failure:
        error = _blame_elasticsearch(failure, env)
        message = _scrub(error.message, env)
        log("job.failed", level="error", reason=error.reason, message=message)
        finish({**error.payload(), "message": message}, out=sys.stdout, environ=env)
        return 1
    except Exception as error:  # the termination message must say something, whatever happened
        message = _scrub(f"{type(error).__name__}: {error}", env)[:500]  # scrub first, then cut
        log("job.crashed", level="error", error=type(error).__name__)
        finish({"error": Reason.INTERNAL_ERROR, "message": message}, out=sys.stdout, environ=env)
        return 2
    finish(result, out=sys.stdout, environ=env)
    return 0


def _blame_elasticsearch(error: JobError, env: Mapping[str, str]) -> JobError:
    """A Job that failed while Elasticsearch does not answer failed because of it, whatever the step said
    (Tracardi's API answers 500 without naming it): then the reason names Elasticsearch, and a retry
    once it answers again is what helps."""
    if error.reason.startswith("Elasticsearch") or not env.get("TRACARDI_ES_HOSTS"):
        return error
    try:
        why = unavailable(es_from_env(env))
    except JobError:
        return error
    if why is None:
        return error
    return JobError(Reason.ELASTICSEARCH_UNAVAILABLE,
                    f"Elasticsearch did not answer ({why}) when the Job failed with {error.reason}: {error.message}",
                    error.details)


_SECRET_VARIABLES = (
    "TRACARDI_ADMIN_PASSWORD",
    "TRACARDI_INSTALLATION_TOKEN",
    "TRACARDI_ES_PASSWORD",
    "TRACARDI_ES_API_KEY",
)


def _secrets(env: Mapping[str, str]) -> list[str]:
    return [value for value in (env.get(name) for name in _SECRET_VARIABLES) if value]


def _scrub(text: str, env: Mapping[str, str]) -> str:
    """Defence in depth: no secret from the environment leaves in a message, whatever produced it, in
    any spelling a message may have given it on the way (whitespace collapsed, JSON-escaped)."""
    return scrub(text, _secrets(env))


def _install(args: argparse.Namespace, env: Mapping[str, str], log: Log) -> dict[str, Any]:
    credentials = AdminCredentials(
        username=env_required(env, "TRACARDI_ADMIN_USERNAME"),
        password=env_required(env, "TRACARDI_ADMIN_PASSWORD"),
        installation_token=env_required(env, "TRACARDI_INSTALLATION_TOKEN"),
    )
    api = TracardiApi(args.api_url)
    api.add_secrets(_secrets(env))
    es = es_from_env(env) if args.flattened_check else None
    return run_install(api, credentials, Deadline(args.timeout), log, es=es)


def _migrate(args: argparse.Namespace, env: Mapping[str, str], log: Log) -> dict[str, Any]:
    username = env_required(env, "TRACARDI_ADMIN_USERNAME")
    password = env_required(env, "TRACARDI_ADMIN_PASSWORD")
    api = TracardiApi(args.api_url)
    api.add_secrets([password, *_secrets(env)])
    es = es_from_env(env)
    request = MigrationRequest(
        source=VersionId(args.from_db, args.from_tenant),
        target=VersionId(args.to_db, args.to_tenant),
        repair=args.repair == "Auto",
        merged_suffix=args.merged_suffix,
    )
    return run_migrate(api, es, request, (username, password), Deadline(args.timeout), log, dt.date.today())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tracardi-operator job")
    add_job_commands(parser.add_subparsers(dest="job_command", required=True))
    return run_job(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
