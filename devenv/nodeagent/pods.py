"""One thread per pod bound to the node: it starts the pod's containers (init containers first), watches
their processes and probes, restarts them by the pod's restartPolicy with back-off, reports the pod's
status, and on deletion stops the processes and removes the pod. Decisions come from `rules`."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes.client.rest import ApiException

from devenv.nodeagent import chroot, rules, runtime
from devenv.nodeagent.images import ImageStore
from devenv.nodeagent.kube import Kube, now_rfc3339, retry
from devenv.nodeagent.rules import EnvError, Json, ProbeSpec, ProbeTracker, Runner, RunnerKind
from devenv.nodeagent.shared import SharedError, SharedSimulator

log = logging.getLogger("nodeagent.pods")

TOKEN_SECONDS = 3600
CONFIG_RETRY_SECONDS = 5.0
POLL_SECONDS = 0.5
BACKOFF_RESET_SECONDS = 120.0


class IpPool:
    """The loopback addresses of live pods on this node (thread-safe)."""

    def __init__(self, first: str | None = None, last: str | None = None) -> None:
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
        self._last: str | None = None
        self._first = ipaddress.IPv4Address(first) if first else rules.FIRST_POD_IP
        self._final = ipaddress.IPv4Address(last) if last else rules.LAST_POD_IP

    def claim(self, uid: str, ip: str) -> bool:
        """Keep the address a pod already has (after an agent restart); False when another pod holds it."""
        with self._lock:
            holder = next((u for u, i in self._by_uid.items() if i == ip), None)
            if holder not in (None, uid):
                return False
            self._by_uid[uid] = ip
            return True

    def allocate(self, uid: str) -> str:
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            ip = rules.next_pod_ip(self._by_uid.values(), self._last, self._first, self._final)
            self._by_uid[uid] = self._last = ip
            return ip

    def release(self, uid: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)


@dataclass
class Context:
    """What every pod worker shares."""

    kube: Kube
    node_name: str
    pods_dir: Path
    repo_root: Path
    stop: threading.Event
    ips: IpPool
    simulator_available: Callable[[], bool]
    images: ImageStore | None = None  # None: every operator image runs as a local process
    dns: rules.ClusterDns | None = None  # cluster DNS (devenv's routed network); None: the host's resolv.conf
    shared: SharedSimulator | None = None  # simulator containers go to one shared process; None: one each
    probe_time_scale: float = 1.0  # startup and readiness probes' delays and periods times this (ProbeSpec.scaled)

    @property
    def python(self) -> str:
        return str(self.repo_root / ".venv" / "bin" / "python")


@dataclass
class Container:
    spec: Json
    init: bool
    restart_count: int = 0
    backoff_level: int = 0
    state: Json = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Json = field(default_factory=dict)
    proc: runtime.Handle | None = None  # the live process (or shared-simulator container)
    log_proc: runtime.Handle | None = None  # the latest one, live or not (for logs)
    runner: Runner | None = None
    started_at: str = ""
    container_id: str = ""
    ready: bool = False
    started: bool = False
    next_start: float = 0.0  # monotonic time of the next (re)start
    done: bool = False  # terminated for good (no restart)
    env: dict[str, str] = field(default_factory=dict)
    probes: dict[str, ProbeTracker] = field(default_factory=dict)
    next_probe: dict[str, float] = field(default_factory=dict)
    running_since: float = 0.0
    previous_offset: int | None = None
    previous_end: int | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))

    @property
    def running(self) -> bool:
        return "running" in self.state

    def status(self) -> Json:
        s: Json = {
            "name": self.name, "image": self.image, "imageID": rules.image_id(self.image),
            "ready": self.ready, "started": self.started, "restartCount": self.restart_count,
            "state": self.state, "lastState": self.last_state,
        }
        if self.container_id and ("running" in self.state or "terminated" in self.state):
            s["containerID"] = self.container_id
        return s


class PodWorker:
    def __init__(self, ctx: Context, pod: Json) -> None:
        meta = pod["metadata"]
        self.thread = threading.Thread(target=self.run, name=f"pod {meta['namespace']}/{meta['name']}", daemon=True)
        self.ctx = ctx
        self.pod = pod
        self.uid = str(meta["uid"])
        self.namespace = str(meta["namespace"])
        self.pod_name = str(meta["name"])
        self.wake = threading.Event()
        self.vanished = False
        self.ip = ""
        self.start_time = ""
        self.sent: Json | None = None
        self.terminal = rules.is_terminal(pod)
        self.deleted = False
        self.init_index = 0
        self.init_failed = False
        self.token_refresh_at = 0.0
        self.sa_dir: Path | None = None
        spec = pod.get("spec") or {}
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self.init_containers = [Container(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c, init=False) for c in spec.get("containers") or []]
        self._adopt(pod.get("status") or {})

    def start(self) -> None:
        self.thread.start()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    # -- the watch feeds these ------------------------------------------------------------------------------

    def update(self, pod: Json) -> None:
        self.pod = pod
        self.wake.set()

    def gone(self) -> None:
        self.vanished = True
        self.wake.set()

    # -- agent restart ---------------------------------------------------------------------------------------

    def _adopt(self, status: Json) -> None:
        """Take over a pod a previous agent ran. Its processes were killed at start-up
        (`runtime.kill_leftovers`): a process container that was running counts as terminated with 137
        (ContainerStatusUnknown) and restarts by the pod's restartPolicy, so a Never pod fails and its
        Job replaces it, while a Deployment's pod gets a fresh process and restartCount + 1.
        Process-less containers simply continue. Addresses and start times are kept."""
        self.start_time = str(status.get("startTime") or "")
        if status.get("podIP") and not self.terminal and not self.ctx.ips.claim(self.uid, status["podIP"]):
            log.warning("%s: address %s is taken; the pod gets a new one", self.ref, status["podIP"])
        elif status.get("podIP"):
            self.ip = str(status["podIP"])
        if self.terminal or not status:
            return
        now = now_rfc3339()
        previous = {s["name"]: s for s in (status.get("initContainerStatuses") or [])
                    + (status.get("containerStatuses") or [])}
        initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                          for c in status.get("conditions") or [])
        for c in self.init_containers + self.containers:
            prev = previous.get(c.name)
            if prev is None:
                continue
            c.restart_count = int(prev.get("restartCount") or 0)
            c.last_state = dict(prev.get("lastState") or {})
            state = prev.get("state") or {}
            runner = rules.runner_for(c.image, self.ctx.simulator_available())
            if "running" in state and runner.kind is RunnerKind.NONE:
                c.runner, c.state = runner, dict(state)
                c.started_at = str(state["running"].get("startedAt") or now)
                c.container_id = str(prev.get("containerID") or "")
                c.ready = c.started = True
                continue
            if "running" in state:
                ended = rules.terminated_state(
                    137, str(state["running"].get("startedAt") or now), now, str(prev.get("containerID") or ""),
                    "-", "", reason="ContainerStatusUnknown")
                ended["terminated"]["message"] = "the node agent restarted and stopped this process"
                self._ended(c, ended, 137)
            elif "terminated" in state:
                code = int(state["terminated"].get("exitCode") or 0)
                if c.init and code == 0:
                    c.state, c.done = dict(state), True
                else:
                    self._ended(c, dict(state), code)
        if initialized:
            self.init_index = len(self.init_containers)
        else:
            while self.init_index < len(self.init_containers) and self.init_containers[self.init_index].done:
                self.init_index += 1

    # -- the loop ------------------------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            try:
                if self.vanished:
                    self._stop_all(grace=1.0)
                    self._release()
                    return
                if self.ctx.stop.is_set():
                    return
                if (self.pod.get("metadata") or {}).get("deletionTimestamp"):
                    if not self.deleted:
                        self._delete()
                elif not self.terminal:
                    self._step()
                    self._push_status()
            except Exception:
                log.exception("%s: unexpected error; carrying on", self.ref)
                self.ctx.stop.wait(2)
            self.wake.wait(self._sleep())
            self.wake.clear()

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.pod_name}"

    def _sleep(self) -> float:
        if self.terminal or self.deleted:
            return 30.0
        now = time.monotonic()
        due = [c.next_start for c in self._active() if not c.running and not c.done]
        due += [t for c in self._active() for t in c.next_probe.values()]
        wait = min([max(0.05, t - now) for t in due], default=30.0)
        if any(c.proc is not None for c in self._active()):
            wait = min(wait, POLL_SECONDS)
        if self.sa_dir is not None:
            wait = min(wait, max(1.0, self.token_refresh_at - now))
        return wait

    def _active(self) -> list[Container]:
        if self.init_index < len(self.init_containers):
            sidecars = [c for c in self.init_containers[: self.init_index] if c.spec.get("restartPolicy") == "Always"]
            return [*sidecars, self.init_containers[self.init_index]]
        return [c for c in self.init_containers if c.spec.get("restartPolicy") == "Always"] + self.containers

    def _step(self) -> None:
        if not self.ip:
            self.ip = self.ctx.ips.allocate(self.uid)
        if not self.start_time:
            self.start_time = now_rfc3339()
        now = time.monotonic()
        for c in self._active():
            if c.proc is not None:
                code = c.proc.exit_code()
                if code is not None:
                    self._process_exited(c, code)
                else:
                    self._probe(c, now)
            elif not c.running and not c.done and now >= c.next_start:
                self._start(c)
        # Init containers run one after the other; a sidecar (restartPolicy Always) only needs to start.
        while self.init_index < len(self.init_containers):
            c = self.init_containers[self.init_index]
            succeeded = c.done and "terminated" in c.state and c.state["terminated"].get("exitCode") == 0
            sidecar_started = c.spec.get("restartPolicy") == "Always" and c.started
            if succeeded or sidecar_started:
                self.init_index += 1
            else:
                break
        if self.sa_dir is not None and time.monotonic() >= self.token_refresh_at:
            with contextlib.suppress(ApiException):
                self._ensure_token()

    # -- starting and ending containers ----------------------------------------------------------------------

    def _image_config(self, c: Container) -> rules.ImageConfig | None:
        """The operator's image when it was built here (then its containers run from it), else None."""
        if self.ctx.images is None or rules.parse_image(c.image).name != rules.OPERATOR_IMAGE:
            return None
        try:
            return self.ctx.images.find(c.image)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            log.warning("%s/%s: cannot look up image %s (%s): running it as a local process",
                        self.ref, c.name, c.image, exc)
            return None

    def _start(self, c: Container) -> None:
        image = self._image_config(c)
        runner = rules.runner_for(c.image, self.ctx.simulator_available(), image_built=image is not None)
        c.runner = runner
        c.container_id = f"devenv://{self.uid[:8]}-{c.name}-{c.restart_count}"
        if runner.kind is RunnerKind.NONE:
            c.started_at = now_rfc3339()
            c.state = {"running": {"startedAt": c.started_at}}
            c.ready = c.started = not c.init
            if c.init and c.spec.get("restartPolicy") != "Always":
                c.state = rules.terminated_state(0, c.started_at, c.started_at, c.container_id, "-", "")
                c.state["terminated"]["message"] = "no process for this image"
                c.done = True
            else:
                c.started = True
            return
        try:
            self._ensure_token()
            facts = rules.PodFacts(
                name=self.pod_name, namespace=self.namespace, uid=self.uid, node_name=self.ctx.node_name,
                service_account=str((self.pod.get("spec") or {}).get("serviceAccountName") or "default"),
                pod_ip=self.ip, labels=(self.pod.get("metadata") or {}).get("labels") or {},
                annotations=(self.pod.get("metadata") or {}).get("annotations") or {})
            stop = self.ctx.stop
            pod_env = rules.resolve_env(
                c.spec, facts,
                secrets=lambda n: retry(lambda: self.ctx.kube.secret_data(self.namespace, n), "secret", stop),
                config_maps=lambda n: retry(lambda: self.ctx.kube.config_map_data(self.namespace, n),
                                            "configmap", stop))
        except (EnvError, ApiException) as exc:
            message = str(exc) if isinstance(exc, EnvError) else f"HTTP {exc.status}: {exc.reason}"
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
            c.next_start = time.monotonic() + CONFIG_RETRY_SECONDS
            log.info("%s/%s: %s", self.ref, c.name, message)
            return
        server = self.ctx.kube.server
        base = f"{self.namespace}_{self.pod_name}_{c.name}"
        log_path = self.ctx.pods_dir / f"{base}.log"
        # The container's /dev/termination-log: a file of its own, named to the process by env.
        termination_log = self.ctx.pods_dir / f"{base}.termination-log"
        termination_log.unlink(missing_ok=True)
        if image is not None:
            try:
                launch, c.env, what = self._image_launch(c, image, pod_env, termination_log)
            except (EnvError, OSError, subprocess.SubprocessError) as exc:
                c.state = {"waiting": {"reason": "CreateContainerError", "message": str(exc)}}
                c.next_start = time.monotonic() + CONFIG_RETRY_SECONDS
                log.info("%s/%s: %s", self.ref, c.name, exc)
                return
            # The launcher gets the agent's PATH only; the container's env is in its spec.
            self._exec(c, launch, {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}, log_path, base, what)
            return
        c.env = rules.process_env(
            pod_env, venv_bin=str(self.ctx.repo_root / ".venv" / "bin"), system_path=os.environ.get("PATH", ""),
            home=os.environ.get("HOME", "/root"), apiserver_host=server.host, apiserver_port=server.port,
            hostname=self.pod_name, sa_dir=str(self.sa_dir) if self.sa_dir else None)
        argv = rules.container_argv(runner, c.spec, c.env, self.ip, self.ctx.python)
        assert argv is not None
        if runner.kind is RunnerKind.SIMULATOR and self.ctx.shared is not None:
            self._shared_launch(c, runner, log_path, shlex.join(argv))
            return
        c.env["TERMINATION_MESSAGE_PATH"] = str(termination_log)
        what = shlex.join(argv)
        if self.ctx.dns is not None and os.geteuid() == 0:
            argv = rules.with_resolv_conf(argv, str(self._resolv_conf()))
        self._exec(c, argv, c.env, log_path, base, what)

    def _resolv_conf(self) -> Path:
        """The pod's resolv.conf (as a kubelet writes it), in `.devenv/pods/<ns>_<pod>.resolv.conf`."""
        path = self.ctx.pods_dir / f"{self.namespace}_{self.pod_name}.resolv.conf"
        try:
            host = Path(rules.RESOLV_CONF).read_text(errors="replace")
        except OSError:
            host = ""
        path.write_text(rules.resolv_conf(self.pod, self.ctx.dns, host))
        path.chmod(0o644)
        return path

    def _image_launch(self, c: Container, image: rules.ImageConfig, pod_env: dict[str, str],
                      termination_log: Path) -> tuple[list[str], dict[str, str], str]:
        """The argv that starts `c` from its image (`chroot`'s spec written beside its log), the
        container's env, and a description for the agent's log."""
        assert self.ctx.images is not None
        server = self.ctx.kube.server
        env = rules.image_env(image, pod_env, apiserver_host=server.host, apiserver_port=server.port,
                              hostname=self.pod_name)
        argv = rules.image_argv(image, c.spec, env)
        rootfs = self.ctx.images.rootfs(image)

        def etc(name: str) -> str:
            try:
                return (rootfs / "etc" / name).read_text(errors="replace")
            except OSError:
                return ""

        who = rules.run_as(self.pod, c.spec, image.user, etc("passwd"), etc("group"))
        mounts, unsupported = rules.container_mounts(self.pod, c.spec)
        for what in unsupported:
            log.warning("%s/%s: volume %s is not supported by devenv; not mounted", self.ref, c.name, what)
        binds: list[chroot.Bind] = []
        for m in mounts:
            if m.kind == "emptyDir":
                source = self.ctx.pods_dir / f"{self.namespace}_{self.pod_name}.volumes" / m.source
                source.mkdir(parents=True, exist_ok=True)
                source.chmod(0o777)  # as the kubelet makes an emptyDir
            elif m.kind == "serviceaccount":
                if self.sa_dir is None:
                    continue
                source = self.sa_dir
            else:
                termination_log.touch()
                termination_log.chmod(0o666)
                source = termination_log
            binds.append(chroot.Bind(str(source), m.target, m.read_only))
        run_dir = self.ctx.pods_dir / f"{self.namespace}_{self.pod_name}_{c.name}.rootfs"
        shutil.rmtree(run_dir, ignore_errors=True)
        for d in ("upper", "work", "root"):
            (run_dir / d).mkdir(parents=True)
        spec = chroot.Spec(
            lower=str(rootfs), upper=str(run_dir / "upper"), work=str(run_dir / "work"), root=str(run_dir / "root"),
            argv=argv, env=env, uid=who.uid, gid=who.gid, groups=list(who.groups),
            cwd=str(c.spec.get("workingDir") or image.working_dir or "/"),
            read_only=rules.read_only_root(c.spec), no_new_privs=rules.no_new_privileges(c.spec), binds=binds,
            hostname=self.pod_name, resolv_conf=str(self._resolv_conf()))
        spec_path = run_dir / "spec.json"
        spec.dump(spec_path)
        launch = ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                  sys.executable, "-m", "devenv.nodeagent.chroot", str(spec_path)]
        what = (f"{shlex.join(argv)} from image {image.id[:12]} as {who.uid}:{who.gid}"
                f"{' (read-only root)' if spec.read_only else ''}")
        return launch, env, what

    def _shared_launch(self, c: Container, runner: Runner, log_path: Path, what: str) -> None:
        """Start a simulator container in the shared simulator process instead of a process of its own."""
        assert self.ctx.shared is not None
        started_at = now_rfc3339()
        self._keep_previous_run(c, log_path)
        spec = {"component": runner.role, "tag": runner.tag, "host": self.ip,
                "port": rules.first_container_port(c.spec), "env": c.env}
        try:
            c.proc = self.ctx.shared.start(f"{self.uid}-{c.name}-{c.restart_count}", spec, log_path,
                                           f"{self.ctx.node_name}:{self.ref}/{c.name}", what)
        except SharedError as exc:
            self._start_failed(c, started_at, log_path, what, exc)
            return
        self._running(c, started_at, f"in the shared simulator (pid {c.proc.pid}): {what}")

    def _start_failed(self, c: Container, started_at: str, log_path: Path, what: str, exc: Exception) -> None:
        """A container that could not be started at all: StartError, 128, as a kubelet reports it."""
        with open(log_path, "a") as f:
            f.write(f"cannot start {what}: {exc}\n")
        ended = rules.terminated_state(128, started_at, started_at, c.container_id, str(log_path), str(exc),
                                       reason="StartError")
        self._ended(c, ended, 128)

    def _keep_previous_run(self, c: Container, log_path: Path) -> None:
        if c.log_proc is not None:
            c.previous_offset = c.log_proc.log_offset
            c.previous_end = log_path.stat().st_size if log_path.exists() else None

    def _running(self, c: Container, started_at: str, what: str) -> None:
        assert c.proc is not None
        c.log_proc = c.proc
        log.info("%s/%s: started %s", self.ref, c.name, what[:400])
        c.started_at = started_at
        c.running_since = time.monotonic()
        c.state = {"running": {"startedAt": started_at}}
        self._arm_probes(c)

    def _exec(self, c: Container, argv: list[str], env: dict[str, str], log_path: Path, base: str,
              what: str) -> None:
        started_at = now_rfc3339()
        self._keep_previous_run(c, log_path)
        try:
            c.proc = runtime.start_process(argv, env, self.ctx.repo_root, log_path,
                                           self.ctx.pods_dir / f"{base}.pid",
                                           f"{self.ctx.node_name}:{self.ref}/{c.name}")
        except OSError as exc:
            self._start_failed(c, started_at, log_path, argv[0], exc)
            return
        self._running(c, started_at, f"pid {c.proc.pid}: {what}")

    def _arm_probes(self, c: Container) -> None:
        now = time.monotonic()
        c.probes, c.next_probe = {}, {}
        for kind, key, initial in (("startup", "startupProbe", False), ("readiness", "readinessProbe", False),
                                   ("liveness", "livenessProbe", True)):
            spec = ProbeSpec.parse(c.spec.get(key))
            if spec is not None and kind != "liveness":  # a kill for liveness keeps the real clock
                spec = spec.scaled(self.ctx.probe_time_scale)
            if spec is not None and not c.init:
                c.probes[kind] = ProbeTracker(spec, result=initial)
                c.next_probe[kind] = now + spec.initial_delay
        c.started = "startup" not in c.probes
        c.ready = c.started and "readiness" not in c.probes and not c.init

    def _probe(self, c: Container, now: float) -> None:
        assert c.proc is not None
        for kind, tracker in list(c.probes.items()):
            if now < c.next_probe.get(kind, 0.0) or (kind != "startup" and not c.started):
                continue
            ok = runtime.run_probe(tracker.spec, c.spec, self.ip, c.env, self.ctx.repo_root)
            result = tracker.record(ok)
            c.next_probe[kind] = time.monotonic() + tracker.spec.period
            if kind == "startup" and result:
                c.started = True
                del c.probes["startup"]
                c.ready = "readiness" not in c.probes
            elif kind == "startup" and tracker.failures >= tracker.spec.failure_threshold:
                log.info("%s/%s: startup probe failed; killing", self.ref, c.name)
                runtime.stop_process(c.proc, self._grace())
            elif kind == "readiness":
                c.ready = result
            elif kind == "liveness" and not result:
                log.info("%s/%s: liveness probe failed; killing", self.ref, c.name)
                runtime.stop_process(c.proc, self._grace())

    def _process_exited(self, c: Container, code: int) -> None:
        assert c.proc is not None
        proc, c.proc = c.proc, None
        runtime.cleanup(proc)
        output = runtime.read_tail(proc.log_path, proc.log_offset)
        termination_log = proc.log_path.with_suffix(".termination-log")
        try:
            written = termination_log.read_text(errors="replace")[:4096]
        except OSError:
            written = None
        ended = rules.terminated_state(code, c.started_at, now_rfc3339(), c.container_id, str(proc.log_path),
                                       rules.tail_lines(output), termination_message=written)
        log.info("%s/%s: exited with %d", self.ref, c.name, code)
        # A container that ran for a while starts its back-off again (the kubelet resets after 10 min).
        if time.monotonic() - c.running_since > BACKOFF_RESET_SECONDS:
            c.backoff_level = 0
        self._ended(c, ended, code)

    def _ended(self, c: Container, ended: Json, code: int) -> None:
        c.ready = False
        c.started = False
        c.probes, c.next_probe = {}, {}
        policy = self.restart_policy
        if c.init and c.spec.get("restartPolicy") == "Always":
            policy = "Always"
        elif c.init and policy == "Always":
            policy = "OnFailure"  # init containers of Always pods retry failures, not successes
        if rules.restarts(policy, code):
            delay = rules.backoff_seconds(c.backoff_level)
            c.last_state = ended
            c.restart_count += 1
            c.backoff_level += 1
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                   f"back-off {delay:.0f}s restarting failed container={c.name} pod={self.pod_name}"}}
            c.next_start = time.monotonic() + delay
            return
        c.state, c.done = ended, True
        if c.init and code != 0:
            self.init_failed = True

    # -- status ----------------------------------------------------------------------------------------------

    def _statuses(self) -> tuple[list[Json], list[Json], str, bool]:
        init_statuses = [c.status() for c in self.init_containers]
        statuses = [c.status() for c in self.containers]
        initialized = self.init_index >= len(self.init_containers)
        phase = rules.pod_phase(self.restart_policy, initialized, self.init_failed, statuses)
        return init_statuses, statuses, phase, initialized

    def _push_status(self) -> None:
        init_statuses, statuses, phase, initialized = self._statuses()
        if phase in ("Succeeded", "Failed"):
            self._stop_all(self._grace())
            self.terminal = True
        self._send(phase, init_statuses, statuses, initialized)
        if self.terminal:
            self._release()

    def _send(self, phase: str, init_statuses: list[Json], statuses: list[Json], initialized: bool) -> None:
        pod_status = self.pod.get("status") or {}
        previous = {c["type"]: c for c in pod_status.get("conditions") or []}
        if self.sent is not None:
            previous.update({c["type"]: c for c in self.sent["conditions"]})
        status = rules.pod_status(
            phase=phase, pod_ip=self.ip, host_ip="127.0.0.1", start_time=self.start_time,
            init_statuses=init_statuses, statuses=statuses, initialized=initialized,
            readiness_gates=(self.pod.get("spec") or {}).get("readinessGates") or [],
            previous_conditions=list(previous.values()), now=now_rfc3339(),
            qos_class=str(pod_status.get("qosClass") or rules.qos_class(
                (self.pod.get("spec") or {}).get("containers") or [])))
        if status == self.sent:
            return
        try:
            retry(lambda: self.ctx.kube.patch_pod_status(self.namespace, self.pod_name, status),
                  f"status of {self.ref}", self.ctx.stop)
            self.sent = status
        except ApiException as exc:
            if exc.status == 404:
                self.vanished = True
            else:
                log.warning("%s: status update failed: HTTP %s %s", self.ref, exc.status, exc.reason)

    # -- service account token -------------------------------------------------------------------------------

    def _ensure_token(self) -> None:
        """A mounted-ServiceAccount-token equivalent: token (TokenRequest bound to this pod), ca.crt and
        namespace in `.devenv/pods/<ns>_<pod>.serviceaccount/`, named by $TRACARDI_OPERATOR_SA_DIR."""
        if not rules.wants_service_account_token(self.pod):
            return
        if self.sa_dir is not None and time.monotonic() < self.token_refresh_at:
            return
        sa = str((self.pod.get("spec") or {}).get("serviceAccountName") or "default")
        token = retry(lambda: self.ctx.kube.request_token(self.namespace, sa, self.pod_name, self.uid,
                                                          TOKEN_SECONDS), "token request", self.ctx.stop)
        d = self.ctx.pods_dir / f"{self.namespace}_{self.pod_name}.serviceaccount"
        d.mkdir(parents=True, exist_ok=True)
        for name, content in (("token", token), ("ca.crt", self.ctx.kube.server.ca_pem.decode()),
                              ("namespace", self.namespace)):
            tmp = d / f".{name}.tmp"
            tmp.write_text(content)
            tmp.chmod(0o644)  # the kubelet's defaultMode: the container's non-root user reads it
            tmp.replace(d / name)
        self.sa_dir = d
        self.token_refresh_at = time.monotonic() + TOKEN_SECONDS * 0.8

    # -- stopping --------------------------------------------------------------------------------------------

    def _grace(self) -> float:
        meta, spec = self.pod.get("metadata") or {}, self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(min(runtime.STOP_GRACE_CAP, max(0, int(grace or 0))))

    def _stop_all(self, grace: float) -> None:
        live = [c for c in self.init_containers + self.containers if c.proc is not None]
        for c in live:
            assert c.proc is not None
            runtime.signal_stop(c.proc)
        deadline = time.monotonic() + grace
        for c in live:
            proc, c.proc = c.proc, None
            assert proc is not None
            runtime.finish_stop(proc, deadline)
            code = proc.exit_code()
            ended = rules.terminated_state(
                code if code is not None else 137, c.started_at, now_rfc3339(), c.container_id,
                str(proc.log_path), "")
            c.state, c.done, c.ready = ended, True, False
            c.probes, c.next_probe = {}, {}

    def _delete(self) -> None:
        """The pod has a deletionTimestamp: stop its processes, report the final state, remove it."""
        self._stop_all(self._grace())
        if not self.terminal:
            for c in self.init_containers + self.containers:
                if c.running:  # process-less containers stop at once, cleanly
                    c.state = rules.terminated_state(0, c.started_at, now_rfc3339(), c.container_id, "-", "")
                    c.state["terminated"]["message"] = "stopped with the pod"
                    c.ready, c.done = False, True
            init_statuses, statuses, _, initialized = self._statuses()
            exits = [(s["state"].get("terminated") or {}).get("exitCode", 1) for s in statuses]
            phase = "Succeeded" if statuses and all(e == 0 for e in exits) else "Failed"
            with contextlib.suppress(ApiException):
                self._send(phase, init_statuses, statuses, initialized)
            self.terminal = True
        try:
            retry(lambda: self.ctx.kube.delete_pod_now(self.namespace, self.pod_name, self.uid),
                  f"delete {self.ref}", self.ctx.stop)
            self.deleted = True
            log.info("%s: deleted", self.ref)
        except ApiException as exc:
            if exc.status in (404, 409):
                self.deleted = True
            else:
                log.warning("%s: delete failed: HTTP %s", self.ref, exc.status)
        self._release()

    def _release(self) -> None:
        self.ctx.ips.release(self.uid)
        for leftover in [*self.ctx.pods_dir.glob(f"{self.namespace}_{self.pod_name}_*.rootfs"),
                         self.ctx.pods_dir / f"{self.namespace}_{self.pod_name}.volumes"]:
            shutil.rmtree(leftover, ignore_errors=True)
        (self.ctx.pods_dir / f"{self.namespace}_{self.pod_name}.resolv.conf").unlink(missing_ok=True)
        if self.sa_dir is not None:
            shutil.rmtree(self.sa_dir, ignore_errors=True)
            self.sa_dir = None

    # -- logs ------------------------------------------------------------------------------------------------

    def log_range(self, container: str, previous: bool) -> tuple[Path, int, int | None, bool] | None:
        """(file, start, end, running) of a container's current or previous run, for the logs endpoint."""
        for c in self.init_containers + self.containers:
            proc = c.log_proc
            if c.name != container or proc is None:
                continue
            if previous:
                if c.previous_offset is None:
                    return None
                return proc.log_path, c.previous_offset, c.previous_end, False
            return proc.log_path, proc.log_offset, None, c.proc is not None
        return None
