"""The Kubernetes control plane of devenv: builds `devenv-cluster` from the Go module in `cluster/`
and runs etcd, kube-apiserver and kube-controller-manager from it as separate processes."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import yaml

from devenv import certs, gobuild, procs
from devenv.paths import REPO_ROOT, State

CLUSTER_MODULE = REPO_ROOT / "devenv" / "cluster"
KUBERNETES_VERSION = "v1.35.4"  # keep in step with cluster/go.mod
SERVICE_CIDR = "10.0.0.0/16"  # without the routed network (network.py gives each devenv its own /16)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int

    @classmethod
    def pick(cls) -> Ports:
        taken: set[int] = set()
        chosen: list[int] = []
        while len(chosen) < 4:
            p = procs.free_port()
            if p not in taken:
                taken.add(p)
                chosen.append(p)
        return cls(*chosen)


def binary(state: State) -> Path:
    return state.bin / "devenv-cluster"


def coredns_binary(state: State) -> Path:
    return state.bin / "devenv-coredns"


KUBE_PROXY_PATCH = CLUSTER_MODULE / "patches" / "kube_proxy_table.go.overlay"
COREDNS_MODULE = REPO_ROOT / "devenv" / "coredns"


def _sources() -> list[Path]:
    return [CLUSTER_MODULE / n for n in ("go.mod", "go.sum", "main.go")] + [KUBE_PROXY_PATCH]


def _coredns_sources() -> list[Path]:
    return [COREDNS_MODULE / n for n in ("go.mod", "go.sum", "main.go")]


def build(state: State) -> Path:
    """Build `devenv-cluster` (etcd, kube-apiserver, kube-controller-manager, kube-proxy, kubectl) and
    `devenv-coredns` unless they are newer than their sources; print progress while compiling.
    `bin/kubectl` links to `devenv-cluster` (the binary dispatches on its name)."""
    out = binary(state)
    if not gobuild.fresh(out, _sources()):
        _compile_cluster(state, out)
    link = state.bin / "kubectl"
    if not link.is_symlink():
        link.unlink(missing_ok=True)
        link.symlink_to(out.name)
    dns = coredns_binary(state)
    if not gobuild.fresh(dns, _coredns_sources()):
        gobuild.go_build(state, "CoreDNS", "build-coredns", COREDNS_MODULE, dns, ["-ldflags", "-s -w"])
    return out


def _kube_proxy_modfile(state: State) -> Path:
    """A `go build -modfile` for the cluster module in which k8s.io/kubernetes is replaced by a tree of
    symbolic links to the module cache, except kube-proxy's nftables package: a copy whose table name
    comes from $DEVENV_KUBE_PROXY_TABLE (the constant removed from proxier.go, `KUBE_PROXY_PATCH` added).
    Go refuses to overlay files inside the module cache, hence the tree."""
    found = subprocess.run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
                           cwd=CLUSTER_MODULE, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise procs.DevenvError(f"control plane build: go mod download k8s.io/kubernetes failed:\n{found.stdout}"
                                f"{found.stderr}")
    upstream = Path(json.loads(found.stdout)["Dir"])
    patched = ("pkg", "proxy", "nftables")
    source = (upstream.joinpath(*patched) / "proxier.go").read_text()
    constant = '\tkubeProxyTable = "kube-proxy"\n'
    if source.count(constant) != 1:
        raise procs.DevenvError(f"control plane build: {upstream.joinpath(*patched)}/proxier.go does not declare "
                                "kubeProxyTable as expected; update the kube-proxy patch for this release")
    tree = state.bin / "kubernetes-src"
    shutil.rmtree(tree, ignore_errors=True)
    here, there = tree, upstream
    for level, name in enumerate(patched):
        here.mkdir(parents=True)
        for entry in there.iterdir():
            if entry.name != name:
                (here / entry.name).symlink_to(entry)
        here, there = here / name, there / name
        if level == len(patched) - 1:
            here.mkdir()
            for entry in there.iterdir():
                if entry.is_file() and entry.suffix == ".go" and not entry.name.endswith("_test.go"):
                    (here / entry.name).write_text(entry.read_text())
            (here / "proxier.go").write_text(source.replace(constant, ""))
            shutil.copyfile(KUBE_PROXY_PATCH, here / "zz_devenv_table.go")
    modfile = state.bin / "cluster.go.mod"
    modfile.write_text((CLUSTER_MODULE / "go.mod").read_text() + f"\nreplace k8s.io/kubernetes => {tree}\n")
    shutil.copyfile(CLUSTER_MODULE / "go.sum", state.bin / "cluster.go.sum")
    return modfile


def _compile_cluster(state: State, out: Path) -> None:
    state.ensure()
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    stamp = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "devenv",
        "buildDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    ldflags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ldflags += [f"-X {pkg}.{k}={v}" for k, v in stamp.items()]
    modfile = _kube_proxy_modfile(state)
    gobuild.go_build(state, f"the control plane (Kubernetes {KUBERNETES_VERSION})", "build-cluster", CLUSTER_MODULE,
                     out, ["-tags", "selinux,notest", "-modfile", str(modfile), "-ldflags", " ".join(ldflags)])


def kubeconfig_yaml(pki: certs.Pki, server: str, user: str) -> str:
    def b64(p: Path) -> str:
        return b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devenv", "cluster": {
            "server": server, "certificate-authority-data": b64(pki.ca_crt)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(pki.path(f"{user}.crt")),
            "client-key-data": b64(pki.path(f"{user}.key"))}}],
        "contexts": [{"name": "devenv", "context": {"cluster": "devenv", "user": user}}],
        "current-context": "devenv",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _ssl_context(pki: certs.Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_crt))
    ctx.load_cert_chain(str(pki.path("admin.crt")), str(pki.path("admin.key")))
    return ctx


def get(pki: certs.Pki, server: str, path: str, timeout: float = 3.0) -> tuple[int, str]:
    """GET a path on the apiserver as cluster-admin."""
    if not server.startswith("https://"):
        raise ValueError(f"not an https URL: {server}")
    req = urllib.request.Request(server + path)  # noqa: S310 - https only, checked above
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_ssl_context(pki)) as r:  # noqa: S310
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode(errors="replace")


def start(state: State, ports: Ports, service_cidr: str = SERVICE_CIDR) -> str:
    """Start etcd, kube-apiserver and kube-controller-manager; return the apiserver URL once ready."""
    state.ensure()
    pki = certs.ensure(state.pki)
    exe = str(binary(state))
    for name, port in (("etcd", ports.etcd_client), ("kube-apiserver", ports.apiserver)):
        if procs.port_open("127.0.0.1", port):
            raise procs.DevenvError(f"{name}: port {port} is already taken")
    _match_service_range(state, service_cidr)
    etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
    procs.start(state, "etcd", [
        exe, "etcd", "--data-dir", str(state.data / "etcd"),
        "--listen-client-url", etcd_url, "--listen-peer-url", f"http://127.0.0.1:{ports.etcd_peer}",
    ])
    procs.wait_for(state, "etcd", lambda: procs.port_open("127.0.0.1", ports.etcd_client), 60, "listening")

    p = pki.path
    procs.start(state, "kube-apiserver", [
        exe, "kube-apiserver",
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", f"--secure-port={ports.apiserver}", "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={p('apiserver.crt')}", f"--tls-private-key-file={p('apiserver.key')}",
        f"--client-ca-file={pki.ca_crt}",
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={service_cidr}",
        "--allow-privileged=true",
        f"--kubelet-client-certificate={p('apiserver-kubelet-client.crt')}",
        f"--kubelet-client-key={p('apiserver-kubelet-client.key')}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--cert-dir={state.pki / 'apiserver-generated'}",
        "--max-requests-inflight=0", "--max-mutating-requests-inflight=0",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=1",
    ])
    server = f"https://127.0.0.1:{ports.apiserver}"
    procs.wait_for(
        state, "kube-apiserver", lambda: get(pki, server, "/readyz")[0] == 200, 120, "ready (/readyz)"
    )
    state.kubeconfig.write_text(kubeconfig_yaml(pki, server, "admin"))
    state.kubeconfig.chmod(0o600)
    cm_kubeconfig = state.pki / "controller-manager.kubeconfig"
    cm_kubeconfig.write_text(kubeconfig_yaml(pki, server, "controller-manager"))
    procs.start(state, "kube-controller-manager", [
        exe, "kube-controller-manager",
        f"--kubeconfig={cm_kubeconfig}",
        f"--authentication-kubeconfig={cm_kubeconfig}", f"--authorization-kubeconfig={cm_kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={ports.controller_manager}",
        "--leader-elect=false",
        f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca_crt}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={service_cidr}",
        f"--cluster-signing-cert-file={pki.ca_crt}", f"--cluster-signing-key-file={pki.ca_key}",
        "--kube-api-qps=200", "--kube-api-burst=400",
        "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
        "--concurrent-job-syncs=10", "--concurrent-gc-syncs=20",
        "--node-monitor-grace-period=60s",
        "--profiling=false",
        "--v=1",
    ])
    procs.wait_for(
        state, "kube-controller-manager",
        lambda: procs.port_open("127.0.0.1", ports.controller_manager), 60, "serving",
    )
    return server


def _match_service_range(state: State, service_cidr: str) -> None:
    """The cluster's default ServiceCIDR is made once, from the apiserver's flag, and never changed: when
    this state directory's Service range differs from the one its etcd data was made with (before devenv's
    network it was always SERVICE_CIDR), the cluster's state starts afresh."""
    record = state.data / "service-cidr"
    etcd = state.data / "etcd"
    previous = record.read_text().strip() if record.exists() else (SERVICE_CIDR if etcd.exists() else service_cidr)
    if previous != service_cidr and etcd.exists():
        procs.say(f"the Service range of this devenv is now {service_cidr} (was {previous}): the cluster's state "
                  f"(data/etcd) starts afresh")
        shutil.rmtree(etcd)
    record.write_text(service_cidr + "\n")


def stop(state: State) -> list[str]:
    """Stop the control plane, newest component first; return what was stopped."""
    return [c for c in reversed(COMPONENTS) if procs.stop(state, c)]
