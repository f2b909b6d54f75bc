"""Benchmark: one operator and a fleet of installations on devenv, side by side with a raw client.

Run (works on a fresh clone; the first run builds devenv, about 10 minutes):

    .venv/bin/python benchmarks/bench_fleet.py [--sizes 50,200] [--big] [--settle 0] [--idle 300] \
        [--bumps 50] [--upgrades 10]

It brings up a devenv of its own in `.devenv-fleet` (the simulator in shared mode, Elasticsearch with a
4 GB heap; `DEVENV_DIR` names another) and stops it at the end unless `--keep`. The operator runs as a
local process (`tracardi-operator run`, leader election off, default settings otherwise) so that its CPU
time and memory are read from /proc. For each fleet size N it prints:

- create: N TracardiInstallations of 0.8.2.1 created at once; time until every one is Ready. They share
  one Elasticsearch, and with one version they share its indices (Tracardi derives the tenant from the
  version): each reports SharedVersionData, as it should; the install Jobs all run;
- idle: for `--idle` seconds, the operator's CPU (% of one core), its RSS, and the Kubernetes API requests
  it made per minute by verb (its own counter, `tracardi_operator_api_requests_total`; kopf's watch
  streams and status patches are not in it), with the resync interval that drives them;
- reaction: one installation's spec.version bumped (0.8.2.1 → 0.8.2.2) → its first Deployment naming the
  new tag, seen through a watch; p50 and p99 over `--bumps` installations, one after the other, each bump
  once the previous one has settled (the fleet idle, as the goal is stated; `--back-to-back` bumps the
  next one at once, while the previous rollouts still run);
- restart: the operator stopped and started again on the idle fleet; seconds until the fresh process has
  passed over every installation, and the PATCH requests it sent meanwhile (a child it finds as its
  manifest says is not applied again);
- fleet minor bump: every installation to 0.8.2.3 by one `kubectl apply --server-side` of a
  multi-document file, until every Deployment names 0.8.2.3; divided by the time a raw client (4
  threads) takes to patch the same Deployments' images directly while the operator is stopped (SIGSTOP):
  the ratio, goal <= 1.5 at N = 200.

Then, once, the major upgrade overhead: an installation of 0.8.1 upgraded to 0.8.2.1 (install Job,
migration Job, switch), its wall time minus the run time of its Jobs' pods (what the operator adds), alone
and for `--upgrades` concurrent upgrades. Each upgrading installation has an Elasticsearch cluster of its
own (started here, 384 MB heap each; `--upgrades` + 1 of them), so that the migrations are independent as
they are in production.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devenv import elasticsearch, procs  # noqa: E402 - after the repository is on the path
from devenv.paths import State  # noqa: E402
from tests.factories import wait_for as wait  # noqa: E402
from tracardi_operator import API_GROUP as GROUP  # noqa: E402
from tracardi_operator import API_VERSION as VERSION  # noqa: E402
from tracardi_operator.models import INSTALLATION  # noqa: E402

PLURAL = INSTALLATION.plural
ADMIN, TOKEN = "fleet-admin", "fleet-token"
TICKS = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- devenv ---------------------------------------------------------------------------------------------


def devenv_up(state_dir: Path) -> dict[str, str]:
    env = {**os.environ, "DEVENV_DIR": str(state_dir), "DEVENV_SIMULATOR": "shared"}
    env.setdefault("DEVENV_ES_HEAP_MB", "4096")
    say(f"devenv in {state_dir} (simulator shared, Elasticsearch heap {env['DEVENV_ES_HEAP_MB']} MB)")
    subprocess.run([sys.executable, "-m", "devenv", "up"], env=env, cwd=REPO, check=True)
    return read_env(state_dir)


def read_env(state_dir: Path) -> dict[str, str]:
    """The variables a running devenv's `env` file exports (KUBECONFIG, the Elasticsearch URL, ...)."""
    values: dict[str, str] = {}
    for line in (state_dir / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip()
    return values


def devenv_down(state_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "devenv", "down"], env={**os.environ, "DEVENV_DIR": str(state_dir)},
                   cwd=REPO, check=False)


def pid_of(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# -- the operator as a local process ------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_status(pid: int, key: str) -> int:
    """A number from /proc/<pid>/status (VmRSS in kB, Threads)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


def watch_idle(operator: Operator, seconds: float) -> tuple[float, float, int, int]:
    """The operator watched for `seconds`: the seconds that passed, the CPU seconds it used, and the largest
    RSS (kB) and thread count seen (sampled every 5 s)."""
    cpu0, t0 = proc_cpu_seconds(operator.pid), time.monotonic()
    rss_max = threads = 0
    while time.monotonic() - t0 < seconds:
        time.sleep(5)
        rss_max = max(rss_max, proc_status(operator.pid, "VmRSS"))
        threads = max(threads, proc_status(operator.pid, "Threads"))
    return time.monotonic() - t0, proc_cpu_seconds(operator.pid) - cpu0, rss_max, threads


def compile_as_shipped() -> None:
    """Bytecode at level 2 for everything the operator imports, as the image has it: with
    PYTHONDONTWRITEBYTECODE set (as in CI) nothing would write it, and the operator would compile every
    module from source at each start, a higher start-up CPU and peak than the image's."""
    python = str(REPO / ".venv" / "bin" / "python")
    where = "import sysconfig; p = sysconfig.get_paths(); print(p['stdlib'], p['purelib'])"
    paths = subprocess.run([python, "-c", where], check=True, capture_output=True, text=True).stdout.split()
    say("compiling the standard library, the virtualenv and the operator at level 2 (-OO), as the image has them")
    # Not checked: a few files of the standard library and of packages are test data that does not
    # compile (lib2to3's, for one), and compileall then exits 1 having compiled all the rest.
    subprocess.run([python, "-m", "compileall", "-q", "-o", "2", *paths, str(REPO / "operator")], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


AS_SHIPPED = "\n".join([
    "import sys",
    # The image has no `kubernetes` package (the operator has a client of its own); the virtualenv has it for
    # the tests. kopf imports it when it finds it: hidden here, the process is the one the image runs.
    "sys.modules['kubernetes'] = None",
    "from tracardi_operator.__main__ import main",
    "sys.exit(main(['run']))",
])


@dataclass
class Operator:
    kubeconfig: str
    log: Path
    port: int = field(default_factory=procs.free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "TRACARDI_OPERATOR_JOB_IMAGE": "tracardi-operator:dev",
               "TRACARDI_OPERATOR_HEALTH_PORT": str(self.port), "TRACARDI_OPERATOR_API_ADDRESSING": "pod",
               "TRACARDI_OPERATOR_FLATTENED_CHECK": "off", "TRACARDI_OPERATOR_LEADER_ELECTION": "off",
               "PYTHONOPTIMIZE": "2"}  # as the image runs it (no docstrings: a smaller process)
        out = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "python"), "-c", AS_SHIPPED], stdout=out,
                                     stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        out.close()
        wait(lambda: self._get("/readyz") is not None, 120, "the operator's /readyz")

    def _get(self, path: str) -> str | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise SystemExit(f"the operator exited with {self.proc.returncode}; see {self.log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every series of one metric on /metrics: its labels and value."""
        out = []
        for line in (self._get("/metrics") or "").splitlines():
            if line.startswith(name + "{"):
                labels, value = line.rsplit(" ", 1)
                pairs = (pair.split("=", 1) for pair in labels[len(name) + 1:-1].split('",') if "=" in pair)
                out.append(({k: v.strip('"') for k, v in pairs}, float(value)))
        return out

    def requests(self) -> dict[str, float]:
        """tracardi_operator_api_requests_total summed by verb."""
        by_verb: dict[str, float] = {}
        for labels, value in self.samples("tracardi_operator_api_requests_total"):
            by_verb[labels["verb"]] = by_verb.get(labels["verb"], 0.0) + value
        return by_verb

    def passes(self) -> dict[str, float]:
        """The passes' counters: `duration_sum`, `duration_count`, `wait_sum:<urgency>`, `wait_count:<urgency>`,
        and `retries` (passes that failed and were tried again)."""
        out: dict[str, float] = {}
        for line in (self._get("/metrics") or "").splitlines():
            name, _, value = line.rpartition(" ")
            if name.startswith("tracardi_operator_reconcile_duration_seconds_"):
                out["duration_" + name.rsplit("_", 1)[1]] = float(value)
            elif name.startswith("tracardi_operator_reconcile_wait_seconds_sum{") or \
                    name.startswith("tracardi_operator_reconcile_wait_seconds_count{"):
                kind = "wait_sum" if "_sum{" in name else "wait_count"
                urgency = name.split('urgency="', 1)[1].split('"', 1)[0]
                out[f"{kind}:{urgency}"] = float(value)
            elif name == 'tracardi_operator_reconciliations_total{result="retry"}':
                out["retries"] = float(value)
        return out

    def installations_passed(self) -> int:
        """Installations this process has finished a pass over (their phase series, `installation_phase`)."""
        return sum(1 for _, value in self.samples("tracardi_operator_installation_phase") if value == 1)

    def patches(self) -> dict[str, float]:
        """PATCH requests by resource (server-side applies and status patches)."""
        return {resource: value for (verb, resource), value in self.requests_by_resource().items() if verb == "PATCH"}

    def requests_by_resource(self) -> dict[tuple[str, str], float]:
        """tracardi_operator_api_requests_total by verb and resource."""
        return {(labels["verb"], labels["resource"]): value
                for labels, value in self.samples("tracardi_operator_api_requests_total")}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pause(self) -> None:
        os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(10)


# -- Kubernetes -----------------------------------------------------------------------------------------


@dataclass
class Kube:
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def namespace(self, name: str) -> None:
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        wait(lambda: _exists(lambda: self.core.read_namespaced_service_account("default", name)), 60,
             f"namespace {name}'s default ServiceAccount")
        for secret, data in ((ADMIN, {"username": "admin@fleet.test", "password": "fleet-admin-pw"}),
                             (TOKEN, {"token": "fleet-install-token"})):
            self.core.create_namespaced_secret(name, client.V1Secret(
                metadata=client.V1ObjectMeta(name=secret),
                data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()}))

    def delete_namespace(self, name: str, timeout: float = 900) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_namespace(name)
        wait(lambda: not _exists(lambda: self.core.read_namespace(name)), timeout, f"namespace {name} gone", 2)

    def installations(self, namespace: str) -> list[dict[str, Any]]:
        """Every installation of the namespace; an overloaded apiserver's 429, 5xx or timeout is tried again
        (at N = 500 on 2 cores a listing timed out with 504 while the fleet was being created)."""
        for attempt in range(10):
            try:
                answer = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
                return list(answer["items"])
            except ApiException as e:
                if e.status != 429 and (e.status or 0) < 500:
                    raise
                say(f"  ... listing the installations answered {e.status}; again in {2 + 2 * attempt} s")
                time.sleep(2 + 2 * attempt)
        raise SystemExit("the apiserver kept failing the listing of installations")

    def set_version(self, namespace: str, name: str, version: str) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                   {"spec": {"version": version}})


def _exists(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


LEAN_REPLICAS = {"apiProduction": 0, "gui": 0}
"""`--lean`: the production API and the GUI at no pods (their Deployments and Services stay), two pods an
installation instead of four."""
replicas: dict[str, int] | None = None


def body(namespace: str, name: str, version: str, es_url: str, redis_url: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TracardiInstallation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "version": version,
            "elasticsearch": {"hosts": [es_url], "indexShards": 1, "indexReplicas": 0},
            "redis": {"url": redis_url},
            "installation": {"adminSecretRef": {"name": ADMIN}, "tokenSecretRef": {"name": TOKEN, "key": "token"}},
            **({"replicas": replicas} if replicas else {}),
        },
    }


def settled(obj: dict[str, Any], version: str) -> bool:
    status = obj.get("status") or {}
    conds = {c["type"]: c.get("status") for c in status.get("conditions", [])}
    return (status.get("observedGeneration") == obj["metadata"].get("generation")
            and status.get("currentVersion") == version and conds.get("Ready") == "True"
            and conds.get("Progressing") == "False")


def degraded(obj: dict[str, Any]) -> str | None:
    for c in (obj.get("status") or {}).get("conditions", []):
        if c["type"] == "Degraded" and c.get("status") == "True":
            return f"{obj['metadata']['name']}: {c.get('reason')}: {c.get('message')}"
    return None


def wait_settled(kube: Kube, namespace: str, names: set[str], version: str, timeout: float) -> dict[str, float]:
    """Wait until every named installation is settled on `version`; returns when each was first seen so."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(names):
        for obj in kube.installations(namespace):
            name = obj["metadata"]["name"]
            if name in names and name not in seen:
                problem = degraded(obj)
                if problem:
                    raise SystemExit(f"Degraded: {problem}")
                if settled(obj, version):
                    seen[name] = time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(seen)}/{len(names)} installations settled on {version} after {timeout:.0f} s")
        time.sleep(1.0)
    return seen


class DeploymentImages:
    """A watch on one namespace's Deployments: every Deployment's image tags now, and when an installation's
    first Deployment was first seen naming a tag."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.lock = threading.Lock()
        self.images: dict[str, set[str]] = {}  # deployment -> tags of its containers
        self.first: dict[tuple[str, str], float] = {}  # (instance, tag) -> monotonic time first seen
        self.changed = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        """List once, then watch on from the listing's resourceVersion: each watch request (60 s) takes up
        where the last one ended. (Listing again at every reconnect, as a plain `Watch.stream` does,
        left the watch blind for the seconds it took to read 800 Deployments, and a patch made then was
        seen late: those were the outliers of earlier reaction figures.) Only an expired
        resourceVersion (410) makes it list again."""
        version: str | None = None
        while not self.stopping.is_set():
            w = watch.Watch()
            try:
                if version is None:
                    listing = self.kube.apps.list_namespaced_deployment(self.namespace)
                    for d in listing.items:
                        self._record("ADDED", d)
                    version = listing.metadata.resource_version
                for event in w.stream(self.kube.apps.list_namespaced_deployment, self.namespace,
                                      resource_version=version, timeout_seconds=60):
                    self._record(event["type"], event["object"])
                    version = event["object"].metadata.resource_version
                    if self.stopping.is_set():
                        break
            except ApiException as e:
                if e.status == 410:
                    version = None  # expired: list again
                time.sleep(0.5)
            except Exception:  # a broken stream is opened again where it ended
                time.sleep(0.5)
            finally:
                w.stop()

    def _record(self, kind: str, d: Any) -> None:
        now = time.monotonic()
        name = d.metadata.name
        instance = (d.metadata.labels or {}).get("app.kubernetes.io/instance", "")
        tags = {c.image.rsplit(":", 1)[-1] for c in d.spec.template.spec.containers}
        with self.changed:
            if kind == "DELETED":
                self.images.pop(name, None)
            else:
                self.images[name] = tags
                for tag in tags:
                    self.first.setdefault((instance, tag), now)
            self.changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
                self.changed.wait(min(left, 1.0))
        return time.monotonic()

    def all_named(self, tag: str, count: int) -> bool:
        return len(self.images) >= count and all(tags == {tag} for tags in self.images.values())

    def stop(self) -> None:
        self.stopping.set()


# -- measurements ---------------------------------------------------------------------------------------


@dataclass
class FleetResult:
    n: int
    create_s: float = 0.0
    idle_s: float = 0.0
    cpu_percent: float = 0.0
    rss_mib: float = 0.0
    threads: int = 0
    requests_per_min: dict[str, float] = field(default_factory=dict)
    reaction: list[float] = field(default_factory=list)
    fleet_bump_s: float = 0.0
    raw_patch_s: float = 0.0
    deployments: int = 0
    simulator_rss_mib: float = 0.0
    agent_rss_mib: float = 0.0
    phases: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    """Each phase's name and the passes' counters at its end (`Operator.passes`)."""
    restart_s: float = 0.0
    """A fresh operator process: seconds from its start until it had passed over every installation."""
    restart_patches: dict[str, float] = field(default_factory=dict)
    fresh_cpu_percent: float = 0.0
    fresh_rss_mib: float = 0.0
    """`--idle-only`: a fresh operator's CPU and largest RSS over an idle window after its first passes."""
    kubectl_s: float = 0.0
    """How long the fleet bump's `kubectl apply` itself ran (it applies the documents one after another)."""
    bump_requests: dict[tuple[str, str], float] = field(default_factory=dict)
    """The operator's API requests by verb and resource from the fleet bump's apply until it settled."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def fleet(kube: Kube, values: dict[str, str], state_dir: Path, n: int, args: argparse.Namespace,
          log_dir: Path) -> FleetResult:
    result = FleetResult(n)
    ns = f"fleet-{n}"
    es_url, redis_url = values["ELASTICSEARCH_URL"], values["REDIS_URL"]
    kube.namespace(ns)
    operator = Operator(values["KUBECONFIG"], log_dir / f"operator-{n}.log")
    operator.start()
    images = DeploymentImages(kube, ns)
    names = [f"t{i:03d}" for i in range(n)]
    try:
        waves = [names[i:i + args.waves] for i in range(0, n, args.waves)] if args.waves else [names]
        say(f"N={n}: creating {n} installations of 0.8.2.1" + (f" in {len(waves)} waves" if len(waves) > 1 else ""))
        started = time.monotonic()
        for wave in waves:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda name: kube.custom.create_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, body(ns, name, "0.8.2.1", es_url, redis_url)), wave))
            wait_settled(kube, ns, set(wave), "0.8.2.1", timeout=60 * 60)
            if len(waves) > 1:
                say(f"N={n}: {names.index(wave[-1]) + 1} Ready after {time.monotonic() - started:.0f} s; "
                    f"operator RSS {proc_status(operator.pid, 'VmRSS') >> 10} MiB")
        result.create_s = time.monotonic() - started
        result.phases.append(("create", operator.passes()))
        say(f"N={n}: all Ready in {result.create_s:.0f} s")

        if args.settle:
            say(f"N={n}: settling for {args.settle} s (each installation's first resync, before the idle window)")
            time.sleep(args.settle)
            result.phases.append(("settle", operator.passes()))
        say(f"N={n}: idle for {args.idle} s")
        req0 = operator.requests()
        elapsed, cpu, rss_max, threads = watch_idle(operator, args.idle)
        req1 = operator.requests()
        result.idle_s = elapsed
        result.cpu_percent = 100 * cpu / elapsed
        result.rss_mib = rss_max / 1024
        result.threads = threads
        result.requests_per_min = {v: (req1.get(v, 0) - req0.get(v, 0)) * 60 / elapsed for v in req1}
        simulator = pid_of(state_dir / "pods" / "simulator-shared.pid")
        agent = pid_of(state_dir / "pids" / "nodeagent.pid")
        result.simulator_rss_mib = proc_status(simulator, "VmRSS") / 1024 if simulator else 0.0
        result.agent_rss_mib = proc_status(agent, "VmRSS") / 1024 if agent else 0.0
        result.phases.append(("idle", operator.passes()))
        say(f"N={n}: idle CPU {result.cpu_percent:.2f} % of a core, RSS max {result.rss_mib:.0f} MiB, "
            f"{threads} threads")
        if args.idle_only:
            say(f"N={n}: the operator restarted on the idle fleet, then idle again")
            restart(operator, n, result)
            elapsed, cpu, rss_max, _ = watch_idle(operator, args.idle)
            result.fresh_cpu_percent, result.fresh_rss_mib = 100 * cpu / elapsed, rss_max / 1024
            say(f"N={n}: fresh operator idle CPU {result.fresh_cpu_percent:.2f} %, "
                f"RSS max {result.fresh_rss_mib:.0f} MiB")
            return result

        bumps = names[:min(args.bumps, n)]
        say(f"N={n}: reaction to {len(bumps)} version bumps, one after the other")
        for name in bumps:
            t_bump = time.monotonic()
            kube.set_version(ns, name, "0.8.2.2")
            seen = images.wait(lambda name=name: (name, "0.8.2.2") in images.first, 120,  # type: ignore[misc]
                               f"{name}'s first Deployment on 0.8.2.2")
            result.reaction.append(images.first[(name, "0.8.2.2")] - t_bump)
            del seen
            if not args.back_to_back:
                wait_settled(kube, ns, {name}, "0.8.2.2", timeout=600)
        wait_settled(kube, ns, set(bumps), "0.8.2.2", timeout=1800)
        result.phases.append(("reaction", operator.passes()))

        say(f"N={n}: the operator restarted on the idle fleet")
        restart(operator, n, result)
        result.phases.append(("restart", operator.passes()))

        result.deployments = len(images.images)
        say(f"N={n}: fleet bump of {n} installations ({result.deployments} Deployments) to 0.8.2.3 by kubectl apply")
        manifest = log_dir / f"fleet-{n}.yaml"
        manifest.write_text(yaml.safe_dump_all([body(ns, name, "0.8.2.3", es_url, redis_url) for name in names]))
        kubectl = state_dir / "bin" / "kubectl"
        before = operator.requests_by_resource()
        started = time.monotonic()
        subprocess.run([str(kubectl), "--kubeconfig", values["KUBECONFIG"], "apply", "--server-side",
                        "--force-conflicts", "--field-manager", "bench-fleet", "-f", str(manifest)],
                       check=True, stdout=subprocess.DEVNULL)
        result.kubectl_s = time.monotonic() - started
        images.wait(lambda: images.all_named("0.8.2.3", result.deployments), 1800, "every Deployment on 0.8.2.3")
        result.fleet_bump_s = time.monotonic() - started
        wait_settled(kube, ns, set(names), "0.8.2.3", timeout=1800)
        result.phases.append(("fleet bump", operator.passes()))
        result.bump_requests = {k: v - before.get(k, 0.0) for k, v in operator.requests_by_resource().items()
                                if v - before.get(k, 0.0)}

        say(f"N={n}: the raw client patches the same {result.deployments} Deployments (operator stopped)")
        operator.pause()
        try:
            result.raw_patch_s = raw_patch(kube, ns, sorted(images.images), "0.8.2.4")
            raw_patch(kube, ns, sorted(images.images), "0.8.2.3")  # as the operator left them
        finally:
            operator.resume()
        if args.keep and n == args.last_size:  # an earlier fleet left in place would load the next one
            say(f"N={n}: the fleet is left in namespace {ns} (--keep)")
        else:
            say(f"N={n}: deleting the fleet")
            kube.delete_namespace(ns)
    finally:
        images.stop()
        operator.stop()
    return result


def restart(operator: Operator, n: int, result: FleetResult) -> None:
    """Stop the operator and start it again; record how long the fresh process took to pass over every
    installation, and the PATCH requests it sent meanwhile."""
    operator.stop()
    started = time.monotonic()
    operator.start()
    wait(lambda: operator.installations_passed() >= n, 3600, f"a pass over each of the {n} installations")
    result.restart_s = time.monotonic() - started
    result.restart_patches = operator.patches()


def raw_patch(kube: Kube, namespace: str, deployments: list[str], tag: str) -> float:
    """Set every container image of these Deployments to `tag`, 4 at a time; the seconds it took."""

    def patch(name: str) -> None:
        d = kube.apps.read_namespaced_deployment(name, namespace)
        containers = [{"name": c.name, "image": f"{c.image.rsplit(':', 1)[0]}:{tag}"}
                      for c in d.spec.template.spec.containers]
        kube.apps.patch_namespaced_deployment(name, namespace, {"spec": {"template": {"spec": {
            "containers": containers}}}})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(patch, deployments))
    return time.monotonic() - started


# -- major upgrades ------------------------------------------------------------------------------------


@contextlib.contextmanager
def extra_clusters(count: int, root: Path) -> Iterator[list[str]]:
    """`count` single-node Elasticsearch clusters of their own (384 MB heap each); their URLs."""
    urls: list[str] = []
    states: list[State] = []
    previous = os.environ.get("DEVENV_ES_HEAP_MB")
    os.environ["DEVENV_ES_HEAP_MB"] = "384"
    try:
        for i in range(count):
            state = State(root / f"es{i}")
            state.ensure()
            elasticsearch.build(state)
            states.append(state)
            urls.append(elasticsearch.start(state, elasticsearch.free_ports(1)))
        for state, url in zip(states, urls, strict=True):
            elasticsearch.wait_ready(state, url, timeout=600)
        yield urls
    finally:
        if previous is None:
            os.environ.pop("DEVENV_ES_HEAP_MB", None)
        else:
            os.environ["DEVENV_ES_HEAP_MB"] = previous
        for state in states:
            elasticsearch.stop(state)


def job_seconds(kube: Kube, namespace: str, instance: str, since: float) -> float:
    """Run time of the instance's Jobs' pods created after `since` (wall clock): container start to end."""
    total = 0.0
    pods = kube.core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={instance}").items
    for pod in pods:
        if "job-name" not in (pod.metadata.labels or {}) and "batch.kubernetes.io/job-name" not in (
                pod.metadata.labels or {}):
            continue
        if pod.metadata.creation_timestamp.timestamp() < since - 1:
            continue
        for status in pod.status.container_statuses or []:
            ended = status.state.terminated
            if ended is not None and ended.started_at and ended.finished_at:
                total += (ended.finished_at - ended.started_at).total_seconds()
    return total


def upgrades(kube: Kube, values: dict[str, str], count: int, log_dir: Path) -> dict[str, list[float]]:
    ns = "fleet-upgrades"
    kube.namespace(ns)
    operator = Operator(values["KUBECONFIG"], log_dir / "operator-upgrades.log")
    operator.start()
    out: dict[str, list[float]] = {}
    try:
        with extra_clusters(count + 1, log_dir / "clusters") as urls:  # one for the single upgrade
            for label, batch in (("one upgrade", urls[:1]), (f"{count} concurrent upgrades", urls[1:])):
                names = [f"{'one' if len(batch) == 1 else 'many'}-{i}" for i in range(len(batch))]
                say(f"{label}: installing 0.8.1 on {len(batch)} cluster(s)")
                for name, url in zip(names, batch, strict=True):
                    kube.custom.create_namespaced_custom_object(
                        GROUP, VERSION, ns, PLURAL, body(ns, name, "0.8.1", url, values["REDIS_URL"]))
                wait_settled(kube, ns, set(names), "0.8.1", timeout=1800)
                say(f"{label}: upgrading to 0.8.2.1")
                wall_start, started = time.time(), time.monotonic()
                for name in names:
                    kube.set_version(ns, name, "0.8.2.1")
                done = wait_settled(kube, ns, set(names), "0.8.2.1", timeout=3600)
                out[label] = [(done[name] - started) - job_seconds(kube, ns, name, wall_start) for name in names]
                out[f"{label} (wall)"] = [done[name] - started for name in names]
        kube.delete_namespace(ns)
    finally:
        operator.stop()
    return out


# -- report ---------------------------------------------------------------------------------------------


def phase_table(phases: list[tuple[str, dict[str, float]]]) -> str:
    """Per phase: the passes run, their mean run time, the mean wait for a worker by urgency, and the passes
    that failed (each is tried again after a backoff of 2 s or more)."""
    lines = ["| phase | passes | mean pass (s) | mean wait: change / event / resync (s) | failed |",
             "|---|---|---|---|---|"]
    before: dict[str, float] = {}
    for name, now in phases:
        if now.get("duration_count", 0.0) < before.get("duration_count", 0.0):
            before = {}  # the operator was restarted: its counters began again
        def delta(key: str, now: dict[str, float] = now, before: dict[str, float] = before) -> float:
            return now.get(key, 0.0) - before.get(key, 0.0)

        count = delta("duration_count")
        waits = " / ".join(
            f"{delta(f'wait_sum:{u}') / delta(f'wait_count:{u}'):.2f}" if delta(f"wait_count:{u}") else "-"
            for u in ("change", "event", "resync"))
        mean = delta("duration_sum") / count if count else 0.0
        lines.append(f"| {name} | {count:.0f} | {mean:.2f} | {waits} | {delta('retries'):.0f} |")
        before = now
    return "\n".join(lines)


def report(results: list[FleetResult], overhead: dict[str, list[float]], resync: str, bumps: str) -> None:
    print()
    print("| N | all Ready after create | idle CPU (% of a core) | RSS max (MiB) | threads | API requests/min by verb "
          "| reaction p50 / p99 (s) | fleet bump / raw patch (s) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        verbs = ", ".join(f"{v} {x:.1f}" for v, x in sorted(r.requests_per_min.items()) if x) or "none"
        print(f"| {r.n} | {r.create_s:.0f} s | {r.cpu_percent:.2f} | {r.rss_mib:.0f} | {r.threads} | {verbs} "
              f"| {percentile(r.reaction, 0.5):.2f} / {percentile(r.reaction, 0.99):.2f} (n={len(r.reaction)}) "
              f"| {r.fleet_bump_s:.1f} / {r.raw_patch_s:.1f} ({r.deployments} Deployments) "
              f"| {r.fleet_bump_s / r.raw_patch_s if r.raw_patch_s else float('nan'):.2f} |")
    print(f"(idle window {results[0].idle_s:.0f} s; resync interval {resync}; reaction: {bumps})" if results else "")
    for r in results:
        if r.fresh_rss_mib:
            print(f"N={r.n}: a fresh operator at idle (--idle-only): CPU {r.fresh_cpu_percent:.2f} % of a core, "
                  f"RSS max {r.fresh_rss_mib:.0f} MiB")
    for r in results:
        per_installation = r.simulator_rss_mib / max(1, r.n)
        print(f"N={r.n}: shared simulator RSS {r.simulator_rss_mib:.0f} MiB ({per_installation:.1f} MiB per "
              f"installation), node agent RSS {r.agent_rss_mib:.0f} MiB")
    for r in results:
        patched = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.restart_patches.items())) or "none"
        print(f"N={r.n}: a fresh operator passed over every installation in {r.restart_s:.1f} s; "
              f"PATCH requests meanwhile: {patched}")
    for r in results:
        spent = ", ".join(f"{verb} {resource} {count / max(1, r.n):.1f}"
                          for (verb, resource), count in sorted(r.bump_requests.items(), key=lambda kv: -kv[1]))
        print(f"N={r.n}: the fleet bump's kubectl apply ran {r.kubectl_s:.1f} s of its {r.fleet_bump_s:.1f} s; "
              f"API requests per installation, until settled: {spent or 'none'}")
    for r in results:
        slowest = ", ".join(f"{x:.2f}" for x in sorted(r.reaction, reverse=True)[:5])
        print(f"N={r.n}: slowest reactions (s): {slowest}")
        print(phase_table(r.phases))
    if overhead:
        print()
        print("| major upgrade 0.8.1 → 0.8.2.1 | operator overhead (wall minus Jobs' run time) | wall |")
        print("|---|---|---|")
        for label in [k for k in overhead if not k.endswith("(wall)")]:
            o, w = overhead[label], overhead[f"{label} (wall)"]
            print(f"| {label} | median {statistics.median(o):.1f} s, max {max(o):.1f} s "
                  f"| median {statistics.median(w):.1f} s, max {max(w):.1f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200", help="fleet sizes, comma-separated")
    parser.add_argument("--big", action="store_true", help="add a fleet of 500")
    parser.add_argument("--idle", type=int, default=300, help="seconds of idle measurement per size")
    parser.add_argument("--settle", type=int, default=0,
                        help="seconds to wait after all are Ready before the idle window (330: past the first resync)")
    parser.add_argument("--bumps", type=int, default=50, help="single-installation bumps timed per size")
    parser.add_argument("--back-to-back", action="store_true",
                        help="bump the next installation without waiting for the previous one to settle")
    parser.add_argument("--upgrades", type=int, default=10, help="concurrent major upgrades (0: skip)")
    parser.add_argument("--waves", type=int, default=0,
                        help="create the fleet this many installations at a time, each wave Ready before the next "
                             "(0: all at once)")
    parser.add_argument("--idle-only", action="store_true",
                        help="per size: create, idle, then restart the operator and idle again; no bumps")
    parser.add_argument("--keep", action="store_true", help="leave the devenv running, and the last fleet in it")
    parser.add_argument("--lean", action="store_true",
                        help="no production API or GUI pods (two pods an installation instead of four): devenv's "
                             "stand-ins for pods saturate 2 cores before 500 installations of four are Ready")
    args = parser.parse_args()
    global replicas
    replicas = LEAN_REPLICAS if args.lean else None
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([500] if args.big else [])
    args.last_size = sizes[-1] if sizes else 0
    state_dir = Path(os.environ.get("DEVENV_DIR") or REPO / ".devenv-fleet").resolve()
    values = devenv_up(state_dir)
    log_dir = state_dir / "bench-fleet"
    log_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(REPO / ".venv" / "bin" / "tracardi-operator"), "apply-crds"],
                   env={**os.environ, "KUBECONFIG": values["KUBECONFIG"]}, check=True, stdout=subprocess.DEVNULL)
    kube = Kube(config.new_client_from_config(values["KUBECONFIG"]))
    say(f"machine: {os.cpu_count()} cores; logs in {log_dir}")
    compile_as_shipped()
    results: list[FleetResult] = []
    overhead: dict[str, list[float]] = {}
    resync = os.environ.get("TRACARDI_OPERATOR_RESYNC_SECONDS", "300 s (default)")
    bumps = "back to back" if args.back_to_back else "each bump after the previous one settled"
    try:
        if args.upgrades:
            overhead = upgrades(kube, values, args.upgrades, log_dir)
        for n in sizes:
            results.append(fleet(kube, values, state_dir, n, args, log_dir))
            report(results, overhead, resync, bumps)
    finally:
        if not args.keep:
            devenv_down(state_dir)
    report(results, overhead, resync, bumps)


if __name__ == "__main__":
    main()
