"""The node agent's processes (pid files, stopping, leftovers), probes, the logs endpoint's selection, and
a PodWorker driven against a fake API: exit codes to phases, deletion, adoption after an agent restart."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.nodeagent import logs, runtime
from devenv.nodeagent.kube import ApiServer
from devenv.nodeagent.pods import Context, IpPool, PodWorker
from devenv.nodeagent.rules import ProbeSpec
from tests.factories import wait_for

# -- processes --------------------------------------------------------------------------------------------


def test_process_output_exit_code_and_pid_file(tmp_path: Path) -> None:
    proc = runtime.start_process(["sh", "-c", "echo hi; exit 4"], {"PATH": "/usr/bin:/bin"}, tmp_path,
                                 tmp_path / "a.log", tmp_path / "a.pid", "n:ns/p/c")
    assert (tmp_path / "a.pid").read_text().split()[2] == "n:ns/p/c"
    wait_for(lambda: proc.exit_code() is not None, 10, interval=0.05)
    assert proc.exit_code() == 4
    runtime.cleanup(proc)
    assert not (tmp_path / "a.pid").exists()
    assert runtime.read_tail(tmp_path / "a.log", proc.log_offset) == "hi\n"
    assert "n:ns/p/c: sh -c" in (tmp_path / "a.log").read_text().splitlines()[0]


def test_stop_process_terminates_the_group(tmp_path: Path) -> None:
    proc = runtime.start_process(["sh", "-c", "sleep 100 & sleep 100"], {"PATH": "/usr/bin:/bin"}, tmp_path,
                                 tmp_path / "a.log", tmp_path / "a.pid", "n:x")
    runtime.stop_process(proc, grace=2)
    assert proc.exit_code() == 128 + 15

    def group_gone() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        return False

    # The leader is reaped at once; its children die of the same signal a moment later.
    wait_for(group_gone, 10, interval=0.05)


def test_kill_leftovers_only_of_its_node(tmp_path: Path) -> None:
    mine = runtime.start_process(["sleep", "100"], {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "m.log",
                                 tmp_path / "m.pid", "devenv:ns/p/c")
    other = runtime.start_process(["sleep", "100"], {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "o.log",
                                  tmp_path / "o.pid", "dev2:ns/p/c")
    (tmp_path / "stale.pid").write_text("999999 12345 devenv:ns/gone/c\n")
    try:
        assert runtime.kill_leftovers(tmp_path, "devenv", grace=2) == ["devenv:ns/p/c"]
        wait_for(lambda: mine.popen.poll() is not None, 10, interval=0.05)
        assert other.popen.poll() is None
        assert not (tmp_path / "stale.pid").exists()
        assert (tmp_path / "o.pid").exists()
    finally:
        runtime.stop_process(other, 1)


def test_start_time_identifies_a_process() -> None:
    assert runtime.start_time_of(os.getpid()) is not None
    assert runtime.start_time_of(999999999) is None


# -- probes -----------------------------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[tuple[str, int]]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.1.250", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "127.0.1.250", server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_and_tcp_probes(http_server: tuple[str, int], tmp_path: Path) -> None:
    ip, port = http_server
    container = {"name": "c", "ports": [{"name": "http", "containerPort": port}]}
    ok = ProbeSpec(kind="httpGet", handler={"path": "/ok", "port": "http"})
    bad = ProbeSpec(kind="httpGet", handler={"path": "/no", "port": port})
    tcp = ProbeSpec(kind="tcpSocket", handler={"port": port})
    closed = ProbeSpec(kind="tcpSocket", handler={"port": 1})
    assert runtime.run_probe(ok, container, ip, {}, tmp_path)
    assert not runtime.run_probe(bad, container, ip, {}, tmp_path)
    assert runtime.run_probe(tcp, container, ip, {}, tmp_path)
    assert not runtime.run_probe(closed, container, ip, {}, tmp_path)


def test_exec_probe(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "X": "1"}
    assert runtime.run_probe(ProbeSpec("exec", {"command": ["sh", "-c", 'test "$X" = 1']}), {}, "", env, tmp_path)
    assert not runtime.run_probe(ProbeSpec("exec", {"command": ["false"]}), {}, "", env, tmp_path)
    assert not runtime.run_probe(ProbeSpec("exec", {"command": ["/nonexistent"]}), {}, "", env, tmp_path)


def test_logs_selection() -> None:
    data = b"a\nb\nc\n"
    assert logs.select(data, None, None) == data
    assert logs.select(data, 2, None) == b"b\nc\n"
    assert logs.select(data, 0, None) == b""
    assert logs.select(data, None, 3) == b"a\nb"


def test_ip_pool() -> None:
    pool = IpPool()
    a = pool.allocate("a")
    assert a == "127.0.1.1"
    assert pool.allocate("a") == a
    assert not pool.claim("b", a)
    pool.release("a")
    assert pool.allocate("b") == "127.0.1.2"  # round robin
    assert pool.claim("c", a)


# -- a pod worker against a fake API ----------------------------------------------------------------------


class FakeKube:
    def __init__(self) -> None:
        self.server = ApiServer(host="127.0.0.1", port=6443, ca_pem=b"CA")
        self.statuses: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.secrets: dict[str, dict[str, str]] = {}

    def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def delete_pod_now(self, namespace: str, name: str, uid: str) -> None:
        self.deleted.append(name)

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get(name)

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return None

    def request_token(self, namespace: str, sa: str, pod: str, uid: str, seconds: int) -> str:
        return "TOKEN"

    @property
    def last(self) -> dict[str, Any]:
        return self.statuses[-1] if self.statuses else {}


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    stop = threading.Event()
    c = Context(kube=FakeKube(), node_name="t", pods_dir=tmp_path, repo_root=Path(__file__).resolve().parents[2],  # type: ignore[arg-type]
                stop=stop, ips=IpPool(), simulator_available=lambda: False)
    yield c
    stop.set()


def make_pod(command: list[str], policy: str = "Never", status: dict[str, Any] | None = None,
             **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
        "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": "tracardi-operator:dev", "command": command, **container}]},
        "status": status or {},
    }


def fake(ctx: Context) -> FakeKube:
    assert isinstance(ctx.kube, FakeKube)
    return ctx.kube


def test_worker_reports_failure_with_exit_code_and_log(ctx: Context) -> None:
    worker = PodWorker(ctx, make_pod(["sh", "-c", "echo boom; exit 3"]))
    worker.start()
    wait_for(lambda: fake(ctx).last.get("phase") == "Failed", 10, interval=0.05)
    cs = fake(ctx).last["containerStatuses"][0]
    assert cs["state"]["terminated"]["exitCode"] == 3
    assert cs["state"]["terminated"]["message"].endswith("ns_p_main.log\nboom")
    assert fake(ctx).last["podIP"] == "127.0.1.1"
    assert "127.0.1.1" not in ctx.ips._by_uid.values()  # released once terminal
    # the token equivalent is written and named in the env
    worker.gone()


def test_worker_succeeds_with_secret_env(ctx: Context) -> None:
    fake(ctx).secrets["s"] = {"k": "v"}
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    script = 'test "$X" = v && test "$(cat "$TRACARDI_OPERATOR_SA_DIR/token")" = TOKEN'
    worker = PodWorker(ctx, make_pod(["sh", "-c", script], env=env))
    worker.start()
    wait_for(lambda: fake(ctx).last.get("phase") in ("Succeeded", "Failed"), 10, interval=0.05)
    assert fake(ctx).last["phase"] == "Succeeded"
    worker.gone()


def test_worker_waits_for_a_missing_secret(ctx: Context) -> None:
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]
    worker = PodWorker(ctx, make_pod(["true"], env=env))
    worker.start()
    wait_for(lambda: bool(fake(ctx).statuses), 10, interval=0.05)
    state = fake(ctx).last["containerStatuses"][0]["state"]
    assert state["waiting"]["reason"] == "CreateContainerConfigError"
    assert fake(ctx).last["phase"] == "Pending"
    worker.gone()


def test_worker_restarts_on_failure_with_backoff(ctx: Context) -> None:
    worker = PodWorker(ctx, make_pod(["sh", "-c", "echo run; exit 1"], policy="OnFailure"))
    began = time.monotonic()
    worker.start()
    wait_for(lambda: fake(ctx).last.get("containerStatuses", [{}])[0].get("restartCount") == 1, 10, interval=0.05)
    cs = fake(ctx).last["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert fake(ctx).last["phase"] == "Running"
    wait_for(lambda: fake(ctx).last["containerStatuses"][0]["restartCount"] == 2, 10, interval=0.05)
    assert time.monotonic() - began >= 2.0  # the first back-off
    time.sleep(1.0)
    assert fake(ctx).last["containerStatuses"][0]["restartCount"] == 2  # the second back-off is 4 s
    worker.gone()
    log_file = ctx.pods_dir / "ns_p_main.log"
    assert log_file.read_text().count("run\n") == 2
    assert worker.log_range("main", previous=True) is not None


def test_worker_deletes_a_pod_being_deleted(ctx: Context) -> None:
    pod = make_pod(["sleep", "100"], policy="Always")
    worker = PodWorker(ctx, pod)
    worker.start()
    wait_for(lambda: fake(ctx).last.get("phase") == "Running", 10, interval=0.05)
    pid = worker.containers[0].proc.pid  # type: ignore[union-attr]
    deleting = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2025-01-01T00:00:00Z",
                                    "deletionGracePeriodSeconds": 30}}
    worker.update(deleting)
    wait_for(lambda: fake(ctx).deleted == ["p"], 10, interval=0.05)
    assert runtime.start_time_of(pid) is None
    assert fake(ctx).last["phase"] == "Failed"  # killed by SIGTERM: 143
    assert fake(ctx).last["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143
    worker.gone()


def test_adopting_a_never_pod_whose_process_was_lost_fails_it(ctx: Context) -> None:
    status = {"phase": "Running", "podIP": "127.0.1.77", "startTime": "t0",
              "containerStatuses": [{"name": "main", "restartCount": 0,
                                     "state": {"running": {"startedAt": "t0"}}}]}
    worker = PodWorker(ctx, make_pod(["sleep", "100"], status=status))
    worker.start()
    wait_for(lambda: fake(ctx).last.get("phase") == "Failed", 10, interval=0.05)
    term = fake(ctx).last["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (137, "ContainerStatusUnknown")
    assert fake(ctx).last["podIP"] == "127.0.1.77"
    worker.gone()


def test_adopting_an_always_pod_restarts_it(ctx: Context) -> None:
    status = {"phase": "Running", "podIP": "127.0.1.78", "startTime": "t0",
              "containerStatuses": [{"name": "main", "restartCount": 2,
                                     "state": {"running": {"startedAt": "t0"}}}]}
    worker = PodWorker(ctx, make_pod(["sleep", "100"], policy="Always", status=status))
    worker.start()
    wait_for(lambda: "running" in fake(ctx).last.get("containerStatuses", [{}])[0].get("state", {})
               and fake(ctx).last["containerStatuses"][0]["restartCount"] == 3, 15, interval=0.05)
    assert fake(ctx).last["containerStatuses"][0]["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    worker.gone()
    wait_for(lambda: not worker.is_alive(), 10, interval=0.05)
