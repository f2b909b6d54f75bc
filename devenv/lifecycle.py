"""Bringing the whole local environment up and down in order, and telling whether it is up."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devenv import controlplane, gobuild, network, procs, redis
from devenv.paths import REPO_ROOT, State

NODE_NAME = "devenv"
ALL_COMPONENTS = (*network.COMPONENTS, "nodeagent", *reversed(controlplane.COMPONENTS), "elasticsearch",
                  redis.COMPONENT)


def read_env(state: State) -> dict[str, str]:
    """The values of `.devenv/env` (KUBECONFIG, ELASTICSEARCH_URL, REDIS_URL, REDIS_PORT); empty when down."""
    try:
        lines = state.env_file.read_text().splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.removeprefix("export ").split("=", 1) for line in lines if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _ports_file(state: State) -> Any:
    return state.root / "ports.json"


def components(state: State) -> tuple[str, ...]:
    """The components this devenv runs: kube-proxy and CoreDNS only with the routed network."""
    routed = (state.root / "network.json").exists()
    return tuple(c for c in ALL_COMPONENTS if routed or c not in network.COMPONENTS)


def is_up(state: State) -> bool:
    """Every component runs and the apiserver answers /readyz."""
    if not all(procs.running(state, c) for c in components(state)):
        return False
    try:
        ports = json.loads(_ports_file(state).read_text())
        from devenv import certs

        code, _ = controlplane.get(certs.Pki(state.pki), f"https://127.0.0.1:{ports['apiserver']}", "/readyz")
    except (OSError, ValueError, KeyError):
        return False
    return code == 200


def _parallel(*steps: Callable[[], object]) -> None:
    errors: list[BaseException] = []

    def run(step: Callable[[], object]) -> None:
        try:
            step()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _node_ready(state: State) -> bool:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(state.kubeconfig)))
    node = api.read_node(NODE_NAME)
    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    tainted = any(t.key == "node.kubernetes.io/not-ready" for t in node.spec.taints or [])
    return ready and not tainted


def worker_state(base: State, name: str) -> State:
    """A test worker's devenv beside `base` (`State.worker`), ready to come up: its directory, and its
    `bin/` a link to `base`'s, so the binaries are built once (a `bin/` of its own from an earlier run is
    replaced by the link)."""
    own = base.worker(name)
    own.root.mkdir(parents=True, exist_ok=True)
    base.bin.mkdir(parents=True, exist_ok=True)
    if not own.bin.is_symlink():
        if own.bin.is_dir():
            shutil.rmtree(own.bin)
        own.bin.symlink_to(base.bin)
    return own


def probe_time_scale() -> float:
    """$DEVENV_PROBE_TIME_SCALE (default 1): the node agent runs probes at this multiple of their initial
    delays and periods (`make test` uses 0.2: waiting for readiness was a quarter of its time)."""
    from devenv.nodeagent.rules import parse_time_scale

    try:
        return parse_time_scale(os.environ.get("DEVENV_PROBE_TIME_SCALE", "1"))
    except ValueError as e:
        raise procs.DevenvError(f"DEVENV_PROBE_TIME_SCALE: {e}") from None


def up(state: State, es_nodes: int = 1) -> dict[str, str]:
    scale = probe_time_scale()
    if is_up(state):
        procs.say(f"devenv is already up ({state.env_file})")
        running = _running_probe_time_scale(state)
        if running != scale:
            procs.say(f"  its probes run at {running:g} times their delays, not the {scale:g} asked for; "
                      "`make devenv-down` first to change that")
        return read_env(state)
    started = time.monotonic()
    redis.server_binary()  # fail at once, with how to install it, when redis-server is missing
    down(state, quiet=True)  # whatever half remains of an earlier run
    state.ensure()
    from devenv import elasticsearch

    with gobuild.build_lock(state):  # a test worker's devenv shares bin/ with the first one (worker_state)
        _parallel(lambda: controlplane.build(state), lambda: elasticsearch.build(state))
    net = network.setup(state)
    if net.plan is None:
        procs.say(network.fallback_message(net))
    else:
        procs.say(f"network: pods {net.plan.pod_cidr}, Services {net.plan.service_cidr}, "
                  f"cluster DNS {net.plan.dns_ip} (routes to lo; kube-proxy table ip {net.plan.table})")
    ports = controlplane.Ports.pick()
    es_port = elasticsearch.free_ports(es_nodes)
    redis_port = redis.free_port()
    try:
        procs.say(f"starting Redis on port {redis_port}")
        redis_url = redis.start(state, redis_port)
        procs.say("starting Elasticsearch 7.10.2")
        es_url = elasticsearch.start(state, es_port, nodes=es_nodes)
        procs.say("starting etcd, kube-apiserver, kube-controller-manager")
        server = controlplane.start(
            state, ports, net.plan.service_cidr if net.plan else controlplane.SERVICE_CIDR)
        procs.say(f"kube-apiserver ready at {server}")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        procs.start(state, "nodeagent", [
            sys.executable, "-m", "devenv.nodeagent", "--kubeconfig", str(state.kubeconfig),
            "--state-dir", str(state.root), "--node-name", NODE_NAME, "--pod-ips", net.pod_ips,
            "--probe-time-scale", f"{scale:g}",
            *(["--cluster-dns", net.plan.dns_ip, "--cluster-domain", network.CLUSTER_DOMAIN] if net.plan else []),
        ], env=env, cwd=REPO_ROOT)
        procs.wait_for(
            state, "nodeagent", lambda: _node_ready(state), 120, f"node {NODE_NAME} Ready and untainted"
        )
        if net.plan is not None:
            procs.say("node ready; starting kube-proxy and CoreDNS")
            network.start(state, net.plan, server, NODE_NAME)
        procs.say("waiting for Elasticsearch")
        elasticsearch.wait_ready(state, es_url)
    except BaseException:
        down(state, quiet=True)
        raise
    _ports_file(state).write_text(json.dumps({
        "apiserver": ports.apiserver, "etcd": ports.etcd_client,
        "controllerManager": ports.controller_manager, "elasticsearch": es_port, "redis": redis_port,
    }))
    _probes_file(state).write_text(json.dumps({"timeScale": scale}))
    values = {"KUBECONFIG": str(state.kubeconfig), "ELASTICSEARCH_URL": es_url, "REDIS_URL": redis_url,
              "REDIS_PORT": str(redis_port)}
    if net.plan is not None:
        values |= {"DEVENV_POD_CIDR": net.plan.pod_cidr, "DEVENV_SERVICE_CIDR": net.plan.service_cidr,
                   "DEVENV_CLUSTER_DNS": net.plan.dns_ip}
    state.env_file.write_text("".join(f"export {k}={v}\n" for k, v in values.items()))
    procs.say(f"devenv up in {time.monotonic() - started:.0f}s; source {state.env_file}")
    return values


def _probes_file(state: State) -> Path:
    """The probe time scale the running node agent was given (`probe_time_scale`)."""
    return state.root / "probes.json"


def _running_probe_time_scale(state: State) -> float:
    try:
        recorded = json.loads(_probes_file(state).read_text())
    except (OSError, ValueError):
        return 1.0  # a devenv brought up before the scale was recorded ran on the real clock
    scale = recorded.get("timeScale", 1) if isinstance(recorded, dict) else 1
    return float(scale) if isinstance(scale, int | float) else 1.0


def _stop_pod_processes(state: State) -> int:
    """Safety net: pod processes a killed node agent left behind (it records them in pid files)."""
    from devenv.nodeagent import runtime

    return len(runtime.kill_leftovers(state.pods, NODE_NAME, grace=2))


def down(state: State, quiet: bool = False) -> list[str]:
    stopped = [c for c in ("operator", *ALL_COMPONENTS) if procs.stop(state, c)]  # operator: make demo
    if state.pods.exists() and _stop_pod_processes(state):
        stopped.append("pod processes")
    stopped += network.cleanup(state)  # routes and kube-proxy's table, after kube-proxy stopped
    state.env_file.unlink(missing_ok=True)
    if not quiet:
        procs.say("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return stopped


def status(state: State) -> int:
    env = read_env(state)
    for c in components(state):
        pid = procs.read_pid(state, c)
        print(f"{c:26} {'running' if procs.alive(pid) else 'stopped':8} pid={pid} log={state.log(c)}")
    for k, v in env.items():
        print(f"{k}={v}")
    return 0 if is_up(state) else 1


# -- faults: one component stopped and started again, as a cluster's own restarts would -------------------


def stop_apiserver(state: State, grace: float = 3.0) -> list[str]:
    """Stop kube-apiserver alone (etcd, the controller manager and the node agent go on), SIGKILL after
    `grace` seconds (it drains watches for longer); return its command line, for `start_apiserver` to
    start it again with the same ports and certificates."""
    pid = procs.read_pid(state, "kube-apiserver")
    if not procs.alive(pid):
        raise procs.DevenvError("kube-apiserver is not running")
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    procs.stop(state, "kube-apiserver", timeout=grace)
    return argv


def start_apiserver(state: State, argv: list[str], timeout: float = 120) -> None:
    """Start kube-apiserver with the command line `stop_apiserver` returned; return once /readyz is 200."""
    from devenv import certs

    procs.start(state, "kube-apiserver", argv)
    server = f"https://127.0.0.1:{json.loads(_ports_file(state).read_text())['apiserver']}"
    pki = certs.Pki(state.pki)
    procs.wait_for(state, "kube-apiserver", lambda: controlplane.get(pki, server, "/readyz")[0] == 200, timeout,
                   "ready (/readyz)", interval=0.2)


def stop_elasticsearch(state: State) -> None:
    """Stop Elasticsearch (its data stays); `start_elasticsearch` starts it again on the same port."""
    from devenv import elasticsearch

    elasticsearch.stop(state)


def start_elasticsearch(state: State, timeout: float = 180) -> None:
    """Start Elasticsearch again on the port devenv gave it; return once its health is yellow or green."""
    from devenv import elasticsearch

    port = int(json.loads(_ports_file(state).read_text())["elasticsearch"])
    nodes = elasticsearch._recorded_node_count(state)
    url = elasticsearch.start(state, port, nodes=nodes)
    elasticsearch.wait_ready(state, url, timeout=timeout)
