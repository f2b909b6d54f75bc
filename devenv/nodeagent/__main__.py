"""Command line of the node agent: `python -m devenv.nodeagent --kubeconfig ... --state-dir ... --node-name ...`.
SIGTERM or SIGINT stop every pod process and end the agent."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devenv.nodeagent import rules
from devenv.nodeagent.agent import Options, run
from devenv.paths import State


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv.nodeagent", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=None, help="default: <state-dir>/kubeconfig")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: .devenv (or $DEVENV_DIR)")
    parser.add_argument("--node-name", default="devenv")
    parser.add_argument("--logs-port", type=int, default=None,
                        help="port of the kubectl-logs endpoint (default: a free one; 0: none)")
    parser.add_argument("--pod-ips", default=None, metavar="FIRST-LAST",
                        help="range of pod addresses: loopback (default 127.0.1.1-127.255.255.254) or within a "
                             "locally routed private /16; give each devenv on one machine its own")
    parser.add_argument("--cluster-dns", default=None, metavar="IP",
                        help="the cluster DNS server pods' resolv.conf names (default: pods get the host's)")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--simulator", choices=["process", "shared"],
                        default=os.environ.get("DEVENV_SIMULATOR", "process"),
                        help="simulator containers: a process each, or all in one shared process "
                             "(default: $DEVENV_SIMULATOR, else process)")
    parser.add_argument("--probe-time-scale", default=os.environ.get("DEVENV_PROBE_TIME_SCALE", "1"),
                        help="run probes at this multiple of their initialDelaySeconds and periodSeconds, in (0, 10] "
                             "(default: $DEVENV_PROBE_TIME_SCALE, else 1); the test suite uses 0.2")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir or State.default().root
    kubeconfig: Path = args.kubeconfig or State(state_dir).kubeconfig
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    if not kubeconfig.exists():
        logging.error("node agent: no kubeconfig at %s", kubeconfig)
        return 2
    try:
        probe_time_scale = rules.parse_time_scale(args.probe_time_scale)
    except ValueError as e:
        parser.error(str(e))
    pod_ips = None
    if args.pod_ips:
        first, last = rules.parse_pod_ip_range(args.pod_ips)
        pod_ips = (str(first), str(last))
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("nodeagent").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run(Options(kubeconfig=kubeconfig, state_dir=state_dir, node_name=args.node_name,
                logs_port=args.logs_port, pod_ips=pod_ips,
                dns=rules.ClusterDns(args.cluster_dns, args.cluster_domain) if args.cluster_dns else None,
                simulator=args.simulator, probe_time_scale=probe_time_scale), stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
