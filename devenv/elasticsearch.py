"""Elasticsearch 7.10.2 for devenv, in one JVM, from Maven Central, with no containers.

`build` resolves the classpath of `org.codelibs:elasticsearch-cluster-runner` (`elasticsearch/pom.xml`, which
brings Elasticsearch and its modules: reindex, painless, analysis-common, ...) with Maven into
`<state>/bin/elasticsearch.classpath`, and compiles a small launcher class next to it. `start` writes the
configuration to `<state>/data/elasticsearch-conf` and runs the launcher detached; `wait_ready` waits for
cluster health yellow; `stop` stops the JVM.

The launcher exists because the runner's own `main` refuses HTTP ports above 9299 (and silently moves to the
next port when one is taken); it runs the same runner with that limit lifted and exits when a node fails to
start. Node i (1-based) listens on HTTP port `http_port + i - 1`. Indices live in `<state>/data/elasticsearch`
and survive restarts; snapshots go to `<state>/data/snapshots` (`path.repo`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from devenv import procs
from devenv.paths import State

COMPONENT = "elasticsearch"
VERSION = "7.10.2"
CLUSTER_NAME = "devenv"
HOST = "127.0.0.1"
POM = Path(__file__).resolve().parent / "elasticsearch" / "pom.xml"

HEAP_MB_FIRST_NODE = 512
HEAP_MB_PER_EXTRA_NODE = 256

# Mostly what Elasticsearch's own jvm.options sets, minus what only its bootstrap uses. The runner skips the
# bootstrap (and with it the root check and the security manager), so these are the whole JVM setup.
JVM_FLAGS = (
    "-Djava.locale.providers=SPI,COMPAT",
    # The Python client (7.14+) refuses a server that does not report the default flavor.
    "-Des.distribution.flavor=default",
    "-Dlog4j2.formatMsgNoLookups=true",
    "-Dlog4j.shutdownHookEnabled=false",
    "-Dlog4j2.disable.jmx=true",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-Dio.netty.allocator.numDirectArenas=0",
    "-Djna.nosys=true",
    "-Dfile.encoding=UTF-8",
    "-Djava.awt.headless=true",
    "-XX:-OmitStackTraceInFastThrow",
    # No GC or JIT tuning: -XX:+UseSerialGC and -XX:TieredStopAtLevel=1 were measured against the defaults and
    # changed neither the start-to-yellow time (4-6 s on 2 cores) nor the resident memory (320-370 MB) noticeably.
)

LAUNCHER_CLASS = "DevenvElasticsearch"
LAUNCHER_SOURCE = """\
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner;

/** Written by devenv/elasticsearch.py: the cluster runner, without its HTTP port limit of 9299. */
public final class DevenvElasticsearch {
    public static void main(String[] args) throws Exception {
        ElasticsearchClusterRunner runner = new ElasticsearchClusterRunner();
        // -1: every node takes exactly baseHttpPort + i and fails if it is in use, instead of moving on.
        runner.setMaxHttpPort(-1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (Exception e) {
                System.err.println("devenv: closing Elasticsearch failed: " + e);
            }
        }));
        try {
            runner.build(args);
        } catch (Throwable t) {
            // Straight to the file descriptor: by now System.err goes through Elasticsearch's logging.
            t.printStackTrace(new PrintStream(new FileOutputStream(FileDescriptor.err), true));
            System.exit(1);
        }
        while (!runner.isClosed()) {
            Thread.sleep(1000);
        }
    }
}
"""

LOG4J2_PROPERTIES = """\
# Written by devenv/elasticsearch.py at every start: everything to the console, which is the devenv log.
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %m%n
# As in Elasticsearch's own configuration: deprecations also go back to the client as Warning headers.
appender.header_warning.type = HeaderWarningAppender
appender.header_warning.name = header_warning
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.deprecation.name = org.elasticsearch.deprecation
logger.deprecation.level = deprecation
logger.deprecation.appenderRef.console.ref = console
logger.deprecation.appenderRef.header_warning.ref = header_warning
logger.deprecation.additivity = false
"""


# Logging until the runner hands log4j Elasticsearch's configuration (which needs Elasticsearch's own appenders).
LOG4J2_STARTUP_PROPERTIES = """\
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
"""


def classpath_file(state: State) -> Path:
    return state.bin / "elasticsearch.classpath"


def launcher_dir(state: State) -> Path:
    return state.bin / "elasticsearch-launcher"


def build_log(state: State) -> Path:
    return state.log(f"{COMPONENT}-build")


def conf_dir(state: State) -> Path:
    return state.data / "elasticsearch-conf"


def data_dir(state: State) -> Path:
    """The runner's base path: one `node_<i>` directory per node, each with its data."""
    return state.data / "elasticsearch"


def snapshots_dir(state: State) -> Path:
    return state.data / "snapshots"


def build(state: State) -> Path:
    """Resolve the runner's classpath with Maven (unless up to date) and compile the launcher."""
    state.ensure()
    cp_file = classpath_file(state)
    if _classpath_current(cp_file):
        procs.say(f"{COMPONENT}: classpath up to date ({cp_file})")
    else:
        _resolve_classpath(state, cp_file)
    _compile_launcher(state, cp_file)
    return cp_file


def heap_mb(nodes: int) -> int:
    """The JVM's heap: $DEVENV_ES_HEAP_MB when set (a fleet of thousands of indices needs gigabytes: each
    index costs heap in the cluster state), else 512 MB plus 256 MB per node after the first."""
    configured = os.environ.get("DEVENV_ES_HEAP_MB", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 256:
            raise procs.DevenvError(f"{COMPONENT}: DEVENV_ES_HEAP_MB must be a number of megabytes >= 256, "
                                    f"not {configured!r}")
        return int(configured)
    return HEAP_MB_FIRST_NODE + HEAP_MB_PER_EXTRA_NODE * (nodes - 1)


def start(state: State, http_port: int, nodes: int = 1) -> str:
    """Start `nodes` Elasticsearch nodes in one detached JVM; node 1 on `http_port`. Return node 1's URL."""
    if nodes < 1:
        raise procs.DevenvError(f"{COMPONENT}: nodes must be at least 1, not {nodes}")
    if procs.running(state, COMPONENT):
        raise procs.DevenvError(f"{COMPONENT}: already running (pid {procs.read_pid(state, COMPONENT)}); stop it first")
    cp_file = classpath_file(state)
    launcher = launcher_dir(state) / f"{LAUNCHER_CLASS}.class"
    if not cp_file.exists() or not launcher.exists():
        raise procs.DevenvError(f"{COMPONENT}: not built ({cp_file} or {launcher} missing); run build first")
    for port in range(http_port, http_port + nodes):
        if not procs.bindable(HOST, port):
            raise procs.DevenvError(f"{COMPONENT}: HTTP port {port} is already in use on {HOST}")
    java = _java()
    state.ensure()
    _check_node_count(state, nodes)
    first_transport = free_ports(nodes)
    transport = (first_transport, first_transport + nodes - 1)
    _write_config(state, nodes, transport)
    heap = heap_mb(nodes)
    argv = [
        java,
        f"-Xms{heap}m",
        f"-Xmx{heap}m",
        *JVM_FLAGS,
        f"-Djava.io.tmpdir={_tmp_dir(state)}",
        f"-Dlog4j.configurationFile={_startup_log_config(state)}",
        "-cp",
        f"{launcher_dir(state)}{os.pathsep}{cp_file.read_text().strip()}",
        LAUNCHER_CLASS,
        "-basePath",
        str(data_dir(state)),
        "-numOfNode",
        str(nodes),
        "-baseHttpPort",
        str(http_port - 1),
        "-clusterName",
        CLUSTER_NAME,
        "-confPath",
        str(conf_dir(state)),
    ]
    pid = procs.start(state, COMPONENT, argv)
    procs.say(
        f"{COMPONENT}: started pid {pid}, {nodes} node(s), HTTP {HOST}:{http_port}"
        f"{f'-{http_port + nodes - 1}' if nodes > 1 else ''}, log {state.log(COMPONENT)}"
    )
    return f"http://{HOST}:{http_port}"


def wait_ready(state: State, url: str, timeout: float = 180) -> None:
    """Wait until every node has joined and the cluster health is yellow or green."""
    expected = _recorded_node_count(state)

    def check() -> bool:
        health = _get_json(f"{url}/_cluster/health")
        joined = health.get("number_of_nodes")
        return health.get("status") in ("yellow", "green") and isinstance(joined, int) and joined >= expected

    procs.wait_for(state, COMPONENT, check, timeout, f"health yellow at {url}")


def stop(state: State) -> bool:
    """Stop the JVM (all its nodes); True when something was running."""
    return procs.stop(state, COMPONENT, timeout=30.0)


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive free ports for the nodes (see `procs.free_port`)."""
    return procs.free_port(HOST, count)


# --- building ---------------------------------------------------------------------------------------------


def _classpath_current(cp_file: Path) -> bool:
    try:
        if cp_file.stat().st_mtime <= POM.stat().st_mtime:
            return False
        entries = [e for e in cp_file.read_text().strip().split(os.pathsep) if e]
    except FileNotFoundError:
        return False
    # The Maven cache may have been cleaned since: then resolve again.
    return bool(entries) and all(Path(e).is_file() for e in entries)


def _resolve_classpath(state: State, cp_file: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise procs.DevenvError(f"{COMPONENT}: Maven (mvn) is not on PATH")
    log = build_log(state)
    partial = cp_file.with_name(cp_file.name + ".partial")
    partial.unlink(missing_ok=True)
    argv = [
        mvn,
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "dependency:build-classpath",
        f"-Dmdep.outputFile={partial}",
        "-Dmdep.includeScope=runtime",
    ]
    procs.say(f"{COMPONENT}: resolving the classpath with Maven (log {log})")
    began = time.monotonic()
    with open(log, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        last_note = began
        while proc.poll() is None:
            time.sleep(0.5)
            now = time.monotonic()
            if now - last_note >= 5:
                procs.say(f"  ... {COMPONENT}: Maven, {now - began:.0f}s, {_downloads(log)} files downloaded")
                last_note = now
            if now - began > 1200:
                proc.kill()
                proc.wait()
                raise procs.DevenvError(f"{COMPONENT}: Maven did not finish in 20 min; log {log}")
    if proc.returncode != 0 or not partial.exists():
        raise procs.DevenvError(f"{COMPONENT}: Maven failed (exit {proc.returncode}); log {log}:\n{procs.tail(log)}")
    os.replace(partial, cp_file)
    procs.say(f"{COMPONENT}: classpath resolved in {time.monotonic() - began:.0f}s ({cp_file})")


def _downloads(log: Path) -> int:
    try:
        return log.read_text(errors="replace").count("Downloaded from")
    except FileNotFoundError:
        return 0


def _compile_launcher(state: State, cp_file: Path) -> None:
    out_dir = launcher_dir(state)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / f"{LAUNCHER_CLASS}.java"
    compiled = out_dir / f"{LAUNCHER_CLASS}.class"
    if not source.exists() or source.read_text() != LAUNCHER_SOURCE:
        source.write_text(LAUNCHER_SOURCE)
    if compiled.exists() and compiled.stat().st_mtime > max(source.stat().st_mtime, cp_file.stat().st_mtime):
        return
    javac = _java("javac")
    log = build_log(state)
    with open(log, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} javac {source}\n".encode())
        out.flush()
        result = subprocess.run(
            [javac, "-nowarn", "-cp", cp_file.read_text().strip(), "-d", str(out_dir), str(source)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0 or not compiled.exists():
        raise procs.DevenvError(
            f"{COMPONENT}: compiling the launcher failed (exit {result.returncode}); log {log}:\n{procs.tail(log)}"
        )


def _java(tool: str = "java") -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / tool).is_file():
        return str(Path(java_home) / "bin" / tool)
    found = shutil.which(tool)
    if found is None:
        raise procs.DevenvError(f"{COMPONENT}: {tool} not found (need Java 17 on PATH or JAVA_HOME)")
    return found


# --- configuration ----------------------------------------------------------------------------------------


def _node_count_file(state: State) -> Path:
    return data_dir(state) / "devenv-nodes"


def _check_node_count(state: State, nodes: int) -> None:
    """Refuse to reuse data written by a cluster of another size: its voting configuration would not form."""
    marker = _node_count_file(state)
    data_dir(state).mkdir(parents=True, exist_ok=True)
    try:
        before = int(marker.read_text().strip())
    except (FileNotFoundError, ValueError):
        before = None
    has_data = any(data_dir(state).glob("node_*/data/nodes"))
    if before is not None and before != nodes and has_data:
        raise procs.DevenvError(
            f"{COMPONENT}: {data_dir(state)} holds a {before}-node cluster, cannot start {nodes} node(s) "
            f"on it (remove that directory to start afresh)"
        )
    marker.write_text(f"{nodes}\n")


def _recorded_node_count(state: State) -> int:
    try:
        return max(1, int(_node_count_file(state).read_text().strip()))
    except (FileNotFoundError, ValueError):
        return 1


def _startup_log_config(state: State) -> Path:
    # Not in the configuration directory: Elasticsearch reads every log4j2*.properties it finds there.
    path = data_dir(state) / "log4j2-startup.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LOG4J2_STARTUP_PROPERTIES)
    return path


def _tmp_dir(state: State) -> Path:
    tmp = data_dir(state) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def _write_config(state: State, nodes: int, transport: tuple[int, int]) -> None:
    conf = conf_dir(state)
    conf.mkdir(parents=True, exist_ok=True)
    snapshots_dir(state).mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by devenv/elasticsearch.py at every start; edits are lost.",
        f"cluster.name: {CLUSTER_NAME}",
        f"network.host: {HOST}",
        # One port per node; with no seed hosts configured, each node probes this whole range.
        f'transport.port: "{transport[0]}-{transport[1]}"',
        f"path.repo: [{json.dumps(str(snapshots_dir(state)))}]",
        # Disks here can be nearly full; never refuse shards because of that.
        "cluster.routing.allocation.disk.threshold_enabled: false",
    ]
    if nodes == 1:
        lines.append("discovery.type: single-node")
    else:
        # Node 1 bootstraps the cluster alone (the runner starts the nodes one after the other and waits for each);
        # the others join it and the voting configuration grows to all of them.
        lines.append('cluster.initial_master_nodes: ["Node 1"]')
        # On a restart node 1 cannot win an election alone; do not let it wait the default 30 s for one before
        # the runner goes on to start the others.
        lines.append("discovery.initial_state_timeout: 1s")
    (conf / "elasticsearch.yml").write_text("\n".join(lines) + "\n")
    (conf / "log4j2.properties").write_text(LOG4J2_PROPERTIES)


def _get_json(url: str) -> dict[str, object]:
    # No proxies: the URL is on loopback, whatever http_proxy says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        body = json.load(response)
    if not isinstance(body, dict):
        raise ValueError(f"unexpected response from {url}: {body!r}")
    return body
