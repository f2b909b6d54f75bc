"""`python -m devenv.simulator api|worker|gui --tag <image tag> --host <ip> --port <port>`, or
`python -m devenv.simulator shared --socket <path>` (one process serving many containers: shared.py).

Reads the pod's env (see settings.py). An unknown tag or a bad variable exits with code 2 and one line
on stderr, which the node agent shows in the pod's status. An API or worker that Tracardi itself would
not start (0.8.2.x with a PERFORMANCE_TRACKING that is not a Sentry DSN) exits with code 1 and one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from aiohttp import web

from devenv.simulator.api import make_app
from devenv.simulator.es import client
from devenv.simulator.gui import make_gui
from devenv.simulator.settings import Settings, SettingsError, startup_error
from devenv.simulator.shared import serve
from devenv.simulator.versions import UnknownTagError, version_for_tag
from devenv.simulator.worker import Worker


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devenv.simulator", description=__doc__)
    p.add_argument("component", choices=["api", "worker", "gui", "shared"])
    p.add_argument("--tag", help="image tag, e.g. 0.8.1 or 0.8.2.1 (required but for shared)")
    p.add_argument("--socket", type=Path, help="shared: the control socket's path")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=80)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("LOGGING_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("elasticsearch").setLevel(logging.WARNING)
    if args.component == "shared":
        if args.socket is None:
            print("shared needs --socket <path>", file=sys.stderr)
            return 2
        serve(args.socket)
        return 0
    if not args.tag:
        print("--tag is required", file=sys.stderr)
        return 2
    try:
        version = version_for_tag(args.tag)
        settings = Settings.from_env(version, os.environ)
    except (UnknownTagError, SettingsError) as e:
        print(str(e), file=sys.stderr)
        return 2
    crash = startup_error(settings) if args.component != "gui" else None
    if crash is not None:
        print(crash, file=sys.stderr)
        return 1
    if args.component == "gui":
        web.run_app(make_gui(version, args.tag), host=args.host, port=args.port, print=None)
        return 0
    if args.component == "api":
        logging.getLogger("tracardi.api").info(
            "Tracardi %s API (db %s, tenant %s, production=%s) on %s:%s", version.version,
            version.db_version, settings.namespace.tenant, settings.production, args.host, args.port)
        web.run_app(make_app(settings, client(settings)), host=args.host, port=args.port, print=None,
                    access_log=None)
        return 0
    worker = Worker(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
