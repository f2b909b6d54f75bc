"""Benchmark: the operator's idle cost at the pass rate of a larger fleet, on a fleet already running.

Run on the devenv and fleet that `bench_fleet.py --keep` leaves behind:

    DEVENV_DIR=<its devenv> .venv/bin/python benchmarks/bench_idle.py [--namespace fleet-200] [--as 500] \
        [--idle 300]

An idle installation costs one pass per resync interval (300 s by default, with 10 % jitter), so N
installations at a resync of 300 x N / M seconds get as many passes a second as M installations at the
default. This starts a fresh operator (as `bench_fleet.py` does: a local process, leader election off)
with that resync, waits until it has passed over every installation and then for one resync interval
more (so every installation's first resync, with its first retention run, is behind it), and then
measures for `--idle` seconds: the operator's CPU (% of one core), its RSS (now and the largest seen),
its threads, its Kubernetes API requests per minute by verb and resource, and its passes.

What it does not stand in for: the memory of M installations (the process holds N installations and
their children, not M; RSS grows with N), and whatever a pass costs more when the cluster holds more
installations (retention's pass reads the listing of every installation; its models are cached by
resourceVersion).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fleet import Operator, proc_status, read_env, say, watch_idle  # it puts the repository on the path
from kubernetes import client, config

from tests.factories import wait_for
from tracardi_operator import API_GROUP, API_VERSION
from tracardi_operator.models import INSTALLATION


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="fleet-200", help="the namespace of the fleet (bench_fleet's)")
    parser.add_argument("--as", dest="as_many", type=int, default=500,
                        help="the fleet size whose pass rate (at the default 300 s resync) to run at")
    parser.add_argument("--idle", type=int, default=300, help="seconds of idle measurement")
    args = parser.parse_args()
    state_dir = Path(os.environ.get("DEVENV_DIR") or Path(__file__).resolve().parents[1] / ".devenv-fleet").resolve()
    values = read_env(state_dir)
    log_dir = state_dir / "bench-idle"
    log_dir.mkdir(parents=True, exist_ok=True)

    operator = Operator(values["KUBECONFIG"], log_dir / "operator.log")
    custom = client.CustomObjectsApi(config.new_client_from_config(values["KUBECONFIG"]))
    n = len(custom.list_namespaced_custom_object(API_GROUP, API_VERSION, args.namespace, INSTALLATION.plural)["items"])
    if not n:
        raise SystemExit(f"no installation in {args.namespace}: run bench_fleet.py --keep first")
    resync = 300.0 * n / args.as_many
    os.environ["TRACARDI_OPERATOR_RESYNC_SECONDS"] = f"{resync:.1f}"
    say(f"{n} installations in {args.namespace}; resync {resync:.1f} s (the pass rate of {args.as_many} "
        f"at 300 s); logs in {log_dir}")
    operator.start()
    try:
        started = time.monotonic()
        wait_for(lambda: operator.installations_passed() >= n, 1800, f"a pass over each of the {n} installations")
        say(f"passed over all {n} in {time.monotonic() - started:.1f} s; settling one resync ({resync * 1.1:.0f} s)")
        time.sleep(resync * 1.1)
        say(f"idle for {args.idle} s")
        req0, passes0 = operator.requests_by_resource(), operator.passes()
        elapsed, cpu, rss_max, threads = watch_idle(operator, args.idle)
        req1, passes1 = operator.requests_by_resource(), operator.passes()
        rss_now = proc_status(operator.pid, "VmRSS")
    finally:
        operator.stop()
    count = passes1.get("duration_count", 0) - passes0.get("duration_count", 0)
    seconds = passes1.get("duration_sum", 0) - passes0.get("duration_sum", 0)
    per_min = {key: (value - req0.get(key, 0.0)) * 60 / elapsed for key, value in req1.items()
               if value - req0.get(key, 0.0)}
    print()
    print("| installations | resync | as many passes as | idle CPU (% of a core) | RSS now / max (MiB) | threads "
          "| passes/min | mean pass (s) | API requests/min |")
    print("|---|---|---|---|---|---|---|---|---|")
    requests = ", ".join(f"{verb} {resource} {rate:.1f}" for (verb, resource), rate in sorted(per_min.items()))
    print(f"| {n} | {resync:.0f} s | {args.as_many} at 300 s | {100 * cpu / elapsed:.2f} "
          f"| {rss_now / 1024:.0f} / {rss_max / 1024:.0f} | {threads} | {count * 60 / elapsed:.1f} "
          f"| {seconds / count if count else float('nan'):.3f} | {requests or 'none'} |")
    print(f"(idle window {elapsed:.0f} s)")


if __name__ == "__main__":
    main()
