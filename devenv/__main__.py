"""`python -m devenv up|down|status`: bring the whole local environment up, down, or report on it."""

from __future__ import annotations

import argparse
import sys

from devenv import procs
from devenv.lifecycle import down, status, up
from devenv.paths import State


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="build what is missing, start everything, wait until ready")
    p_up.add_argument("--es-nodes", type=int, default=1, help="Elasticsearch nodes (default 1)")
    sub.add_parser("down", help="stop everything devenv started (the test workers' devenvs beside it too)")
    sub.add_parser("status", help="what runs, where")
    args = parser.parse_args(argv)
    state = State.default()
    try:
        if args.command == "up":
            up(state, es_nodes=args.es_nodes)
            return 0
        if args.command == "down":
            for worker in state.workers():
                down(worker, quiet=True)
            down(state)
            return 0
        return status(state)
    except procs.DevenvError as e:
        procs.say(f"devenv: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
