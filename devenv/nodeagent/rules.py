"""The node agent's decisions as pure functions over plain (camelCase JSON) dicts: which runner an image
gets, the process argv and env of a container, pod IPs, restarts and back-off, probes, pod phase and the
pod status the agent reports. No I/O here; everything is unit tested."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

Json = dict[str, Any]

# -- images and runners ----------------------------------------------------------------------------------

OPERATOR_IMAGE = "tracardi-operator"
SIMULATOR_ROLES: Mapping[str, str] = {
    "tracardi/tracardi-api": "api",
    "tracardi/update-worker": "worker",
    "tracardi/tracardi-gui": "gui",
}


@dataclass(frozen=True)
class ImageRef:
    """An image reference split into registry (may be empty), repository path, tag and digest."""

    registry: str
    repository: str
    tag: str
    digest: str = ""

    @property
    def name(self) -> str:
        """The last path component of the repository (`tracardi-api` for `tracardi/tracardi-api`)."""
        return self.repository.rsplit("/", 1)[-1]


def parse_image(image: str) -> ImageRef:
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = ""
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    parts = rest.split("/")
    registry = ""
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, parts = parts[0], parts[1:]
    return ImageRef(registry=registry, repository="/".join(parts), tag=tag or ("" if digest else "latest"),
                    digest=digest)


class RunnerKind(Enum):
    IMAGE = "image"  # chroot into the image's root filesystem (the image was built here: `make image`)
    OPERATOR = "operator"  # the container's command and args, as a local process of .venv
    SIMULATOR = "simulator"  # python -m devenv.simulator <role>
    NONE = "none"  # Running and Ready, no process


@dataclass(frozen=True)
class Runner:
    kind: RunnerKind
    role: str = ""
    tag: str = ""


def runner_for(image: str, simulator_available: bool, image_built: bool = False) -> Runner:
    """Which runner a container of `image` gets (the README's "How the node agent runs pods"): the
    operator's image runs from its root filesystem when it exists here (`image_built`), else as a local
    process of the project's virtualenv."""
    ref = parse_image(image)
    if ref.name == OPERATOR_IMAGE:
        return Runner(RunnerKind.IMAGE if image_built else RunnerKind.OPERATOR, tag=ref.tag)
    last_two = "/".join(ref.repository.split("/")[-2:])
    role = SIMULATOR_ROLES.get(last_two)
    if role is not None and simulator_available:
        return Runner(RunnerKind.SIMULATOR, role=role, tag=ref.tag or "latest")
    return Runner(RunnerKind.NONE, tag=ref.tag)


def first_container_port(container: Json, default: int = 80) -> int:
    for port in container.get("ports") or []:
        if port.get("containerPort"):
            return int(port["containerPort"])
    return default


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known variables are replaced, unknown ones kept, `$$` escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _REF.sub(sub, value)


def container_argv(
    runner: Runner, container: Json, env: Mapping[str, str], pod_ip: str, python: str
) -> list[str] | None:
    """The argv of a container's process, or None when the container runs no process."""
    if runner.kind is RunnerKind.SIMULATOR:
        return [python, "-m", "devenv.simulator", runner.role, "--tag", runner.tag,
                "--host", pod_ip, "--port", str(first_container_port(container))]
    if runner.kind is RunnerKind.OPERATOR:
        command = [expand(c, env) for c in container.get("command") or []]
        args = [expand(a, env) for a in container.get("args") or []]
        # Kubernetes semantics: command replaces the entrypoint; args alone go to the entrypoint.
        return command + args if command else [OPERATOR_IMAGE, *args]
    return None


# -- containers from an image's root filesystem ---------------------------------------------------------


@dataclass(frozen=True)
class ImageConfig:
    """What a container runtime takes from an image (its OCI config): ENTRYPOINT, CMD, WORKDIR, ENV, USER."""

    id: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[str, ...] = ()  # NAME=value
    user: str = ""

    @classmethod
    def from_oci(cls, image_id: str, config: Json) -> ImageConfig:
        return cls(id=image_id, entrypoint=tuple(config.get("Entrypoint") or ()), cmd=tuple(config.get("Cmd") or ()),
                   working_dir=str(config.get("WorkingDir") or ""), env=tuple(config.get("Env") or ()),
                   user=str(config.get("User") or ""))


def image_argv(image: ImageConfig, container: Json, env: Mapping[str, str]) -> list[str]:
    """The kubelet's rule: `command` replaces ENTRYPOINT (and drops CMD); `args` replace CMD; `$(VAR)` is
    expanded in both against the container's env."""
    command = [expand(c, env) for c in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if command:
        return command + args
    argv = list(image.entrypoint) + (args if container.get("args") else list(image.cmd))
    if not argv:
        raise EnvError("no command specified: the image has neither ENTRYPOINT nor CMD and the container no command")
    return argv


def image_env(image: ImageConfig, pod_env: Mapping[str, str], *, apiserver_host: str, apiserver_port: int,
              hostname: str) -> dict[str, str]:
    """A container's environment as a runtime builds it: the image's ENV, then HOSTNAME and the
    `kubernetes` Service's variables (the apiserver), then the container's env on top."""
    result: dict[str, str] = {}
    for item in image.env:
        name, _, value = item.partition("=")
        result[name] = value
    result.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    result.update({
        "HOSTNAME": hostname,
        "KUBERNETES_SERVICE_HOST": apiserver_host,
        "KUBERNETES_SERVICE_PORT": str(apiserver_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(apiserver_port),
        "KUBERNETES_PORT": f"tcp://{apiserver_host}:{apiserver_port}",
    })
    result.update(pod_env)
    return result


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()


def _passwd_lookup(passwd: str, name: str) -> tuple[int, int] | None:
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3])
    return None


def _group_lookup(group: str, name: str) -> int | None:
    for line in group.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def run_as(pod: Json, container: Json, image_user: str, passwd: str = "", group: str = "") -> Identity:
    """Who a container's process is: runAsUser/runAsGroup of the container, else of the pod, else the
    image's USER (`uid[:gid]` or names from the image's /etc/passwd and /etc/group); fsGroup and
    supplementalGroups as supplementary groups. Refuses runAsNonRoot with UID 0, as the kubelet does."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    c_sc = container.get("securityContext") or {}
    user_part, _, group_part = image_user.partition(":")
    image_uid: int | None = None
    image_gid: int | None = None
    if user_part.isdigit():
        image_uid = int(user_part)
    elif user_part:
        found = _passwd_lookup(passwd, user_part)
        if found is None:
            raise EnvError(f"unable to find user {user_part}: no matching entries in passwd file")
        image_uid, image_gid = found
    if group_part.isdigit():
        image_gid = int(group_part)
    elif group_part:
        gid = _group_lookup(group, group_part)
        if gid is None:
            raise EnvError(f"unable to find group {group_part}: no matching entries in group file")
        image_gid = gid
    uid = c_sc.get("runAsUser", pod_sc.get("runAsUser", image_uid if image_uid is not None else 0))
    gid = c_sc.get("runAsGroup", pod_sc.get("runAsGroup", image_gid if image_gid is not None else 0))
    non_root = c_sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))
    if non_root and int(uid) == 0:
        raise EnvError("container has runAsNonRoot and image will run as root")
    extra = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    if pod_sc.get("fsGroup") is not None:
        extra.insert(0, int(pod_sc["fsGroup"]))
    groups = tuple(dict.fromkeys([int(gid), *extra]))
    return Identity(uid=int(uid), gid=int(gid), groups=groups)


def read_only_root(container: Json) -> bool:
    return bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem"))


def no_new_privileges(container: Json) -> bool:
    """allowPrivilegeEscalation: false sets no_new_privs on the process."""
    return (container.get("securityContext") or {}).get("allowPrivilegeEscalation") is False


SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class Mount:
    target: str  # inside the container
    source: str  # volume name for kind "emptyDir", a host path otherwise
    kind: str  # emptyDir | serviceaccount | termination-log
    read_only: bool = False


def container_mounts(pod: Json, container: Json) -> tuple[list[Mount], list[str]]:
    """The mounts a container from an image gets: its emptyDir volumeMounts, the ServiceAccount directory
    (unless automount is off, or a volumeMount of its own covers the path) and its termination-message
    file. Also returns the volumeMounts that are not supported here (named in the pod's log)."""
    volumes = {str(v.get("name")): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts: list[Mount] = []
    unsupported: list[str] = []
    for vm in container.get("volumeMounts") or []:
        volume = volumes.get(str(vm.get("name"))) or {}
        path = str(vm.get("mountPath") or "")
        if "emptyDir" in volume:
            mounts.append(Mount(path, str(vm["name"]), "emptyDir", bool(vm.get("readOnly"))))
        elif path == SA_MOUNT_PATH and "projected" in volume:
            continue  # the admission plugin's kube-api-access volume: served by the token directory below
        else:
            unsupported.append(f"{vm.get('name')} at {path}")
    if wants_service_account_token(pod):
        mounts.append(Mount(SA_MOUNT_PATH, "", "serviceaccount", True))
    mounts.append(Mount(str(container.get("terminationMessagePath") or "/dev/termination-log"), "",
                        "termination-log"))
    return mounts, unsupported


# -- env ---------------------------------------------------------------------------------------------------


class EnvError(Exception):
    """A container's env cannot be resolved (kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class PodFacts:
    """What fieldRef and resourceFieldRef can refer to."""

    name: str
    namespace: str
    uid: str = ""
    node_name: str = ""
    service_account: str = "default"
    pod_ip: str = ""
    host_ip: str = "127.0.0.1"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


Lookup = Callable[[str], Mapping[str, str] | None]  # name -> data, or None when the object does not exist

_FIELD_ANNOTATION = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(path: str, facts: PodFacts) -> str:
    simple = {
        "metadata.name": facts.name,
        "metadata.namespace": facts.namespace,
        "metadata.uid": facts.uid,
        "spec.nodeName": facts.node_name,
        "spec.serviceAccountName": facts.service_account,
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return simple[path]
    m = _FIELD_ANNOTATION.match(path)
    if m:
        source = facts.labels if m.group(1) == "labels" else facts.annotations
        return source.get(m.group(2), "")
    raise EnvError(f"unsupported fieldRef {path!r}")


NODE_CAPACITY: Mapping[str, str] = {"cpu": "32", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"}


def resource_value(ref: Json, container: Json) -> str:
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None and kind == "requests":
        value = ((container.get("resources") or {}).get("limits") or {}).get(name)
    if value is None:
        value = NODE_CAPACITY.get(name, "0") if kind == "limits" else "0"
    return str(value)


def _ref_lookup(kind: str, ref: Json, lookup: Lookup) -> str | None:
    name = str(ref.get("name", ""))
    key = str(ref.get("key", ""))
    optional = bool(ref.get("optional", False))
    data = lookup(name)
    if data is None:
        if optional:
            return None
        raise EnvError(f'{kind} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise EnvError(f'couldn\'t find key {key} in {kind} "{name}"')
    return data[key]


def resolve_env(
    container: Json,
    facts: PodFacts,
    secrets: Lookup,
    config_maps: Lookup,
) -> dict[str, str]:
    """A container's environment from envFrom and env, as the kubelet builds it (env wins over envFrom,
    later entries over earlier ones, `$(VAR)` expanded against what came before)."""
    result: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, key, lookup in (("secret", "secretRef", secrets), ("configmap", "configMapRef", config_maps)):
            ref = source.get(key)
            if ref is None:
                continue
            data = lookup(str(ref.get("name", "")))
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind} "{ref.get("name")}" not found')
            for k, v in data.items():
                result[prefix + k] = v
    for var in container.get("env") or []:
        name = str(var["name"])
        if "valueFrom" not in var or var.get("valueFrom") is None:
            result[name] = expand(str(var.get("value") or ""), result)
            continue
        source = var["valueFrom"]
        value: str | None
        if source.get("secretKeyRef") is not None:
            value = _ref_lookup("secret", source["secretKeyRef"], secrets)
        elif source.get("configMapKeyRef") is not None:
            value = _ref_lookup("configmap", source["configMapKeyRef"], config_maps)
        elif source.get("fieldRef") is not None:
            value = field_value(str(source["fieldRef"].get("fieldPath", "")), facts)
        elif source.get("resourceFieldRef") is not None:
            value = resource_value(source["resourceFieldRef"], container)
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            result[name] = value
    return result


def process_env(
    pod_env: Mapping[str, str],
    *,
    venv_bin: str,
    system_path: str,
    home: str,
    apiserver_host: str,
    apiserver_port: int,
    hostname: str,
    sa_dir: str | None,
) -> dict[str, str]:
    """The full environment of a pod's process: a container-like base, then the pod's env on top.
    The agent's own environment (its KUBECONFIG above all) is deliberately not inherited."""
    base = {
        "PATH": f"{venv_bin}:{system_path}" if system_path else venv_bin,
        "HOME": home,
        "HOSTNAME": hostname,
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "KUBERNETES_SERVICE_HOST": apiserver_host,
        "KUBERNETES_SERVICE_PORT": str(apiserver_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(apiserver_port),
        "KUBERNETES_PORT": f"tcp://{apiserver_host}:{apiserver_port}",
    }
    if sa_dir is not None:
        base["TRACARDI_OPERATOR_SA_DIR"] = sa_dir
    merged = {**base, **pod_env}
    if "PATH" in pod_env and not pod_env["PATH"].startswith(venv_bin):
        merged["PATH"] = f"{venv_bin}:{pod_env['PATH']}"
    return merged


def wants_service_account_token(pod: Json) -> bool:
    return (pod.get("spec") or {}).get("automountServiceAccountToken") is not False


# -- pod IPs -----------------------------------------------------------------------------------------------

FIRST_POD_IP = ipaddress.IPv4Address("127.0.1.1")
LAST_POD_IP = ipaddress.IPv4Address("127.255.255.254")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def parse_pod_ip_range(text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """`FIRST-LAST`: inside 127/8 and above 127.0.0.0/24 (where the host's own servers listen), or
    inside one private network (devenv's routed pod network, 10.x.0.0/16)."""
    first_text, _, last_text = text.partition("-")
    first, last = ipaddress.IPv4Address(first_text.strip()), ipaddress.IPv4Address(last_text.strip())
    if first in _LOOPBACK or last in _LOOPBACK:
        if not (FIRST_POD_IP <= first <= last <= LAST_POD_IP):
            raise ValueError(f"pod address range {text!r} must lie within {FIRST_POD_IP}-{LAST_POD_IP}")
    elif not (first <= last and first.is_private and last.is_private
              and ipaddress.IPv4Network(f"{first}/16", strict=False) == ipaddress.IPv4Network(f"{last}/16",
                                                                                              strict=False)):
        raise ValueError(f"pod address range {text!r} must lie within one private /16")
    return first, last


def next_pod_ip(
    in_use: Collection[str], after: str | None = None,
    first: ipaddress.IPv4Address = FIRST_POD_IP, last: ipaddress.IPv4Address = LAST_POD_IP,
) -> str:
    """The next free address in [first, last] after `after` (round-robin, so a freed address is not handed
    out again at once), skipping .0/.255 last octets. All of 127/8 routes to `lo` on Linux, and so does
    devenv's routed pod network (a local route)."""
    taken = set(in_use)
    start = ipaddress.IPv4Address(after) + 1 if after else first
    if not first <= start <= last:
        start = first
    span = int(last) - int(first) + 1
    offset = int(start) - int(first)
    for i in range(span):
        ip = ipaddress.IPv4Address(int(first) + (offset + i) % span)
        if int(ip) & 0xFF not in (0, 255) and str(ip) not in taken:
            return str(ip)
    raise RuntimeError("no free address for a pod")


# -- cluster DNS -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterDns:
    """The kubelet's --cluster-dns and --cluster-domain."""

    server: str
    domain: str = "cluster.local"


def _host_resolv(text: str) -> tuple[list[str], list[str], list[str]]:
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            search = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return nameservers, search, options


def resolv_conf(pod: Json, dns: ClusterDns | None, host_resolv: str) -> str:
    """The /etc/resolv.conf a kubelet writes for a pod (dnsPolicy ClusterFirst, Default, None, and
    ClusterFirstWithHostNet; dnsConfig merged): with ClusterFirst the cluster DNS server, the search path
    `<ns>.svc.<domain> svc.<domain> <domain>` followed by the host's, and `ndots:5`. Without cluster DNS
    (or dnsPolicy Default) the host's nameservers and search path."""
    spec = pod.get("spec") or {}
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    policy = str(spec.get("dnsPolicy") or "ClusterFirst")
    if spec.get("hostNetwork") and policy == "ClusterFirst":
        policy = "Default"  # as the kubelet: host-network pods need ClusterFirstWithHostNet for cluster DNS
    host_ns, host_search, host_options = _host_resolv(host_resolv)
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and dns is not None:
        d = dns.domain
        nameservers = [dns.server]
        search = [f"{namespace}.svc.{d}", f"svc.{d}", d, *host_search]
        options = ["ndots:5"]
    elif policy != "None":
        nameservers, search, options = host_ns, host_search, host_options
    config = spec.get("dnsConfig") or {}
    nameservers += [str(n) for n in config.get("nameservers") or [] if str(n) not in nameservers]
    search += [str(n) for n in config.get("searches") or [] if str(n) not in search]
    merged: dict[str, str | None] = {}
    for opt in options:
        name, _, value = opt.partition(":")
        merged[name] = value or None
    for opt in config.get("options") or []:
        merged[str(opt.get("name"))] = None if opt.get("value") is None else str(opt.get("value"))
    lines = [f"nameserver {n}" for n in nameservers[:3]]
    if search:
        lines.append("search " + " ".join(dict.fromkeys(search)))
    if merged:
        lines.append("options " + " ".join(k if v is None else f"{k}:{v}" for k, v in merged.items()))
    return "\n".join(lines) + "\n"


RESOLV_CONF = "/etc/resolv.conf"


def with_resolv_conf(argv: Sequence[str], resolv_conf_path: str) -> list[str]:
    """A local process with a resolv.conf of its own: a private mount namespace (`unshare --mount`) in
    which `resolv_conf_path` is bound over /etc/resolv.conf, then exec of `argv` (same pid throughout)."""
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            f'mount --bind "$0" {RESOLV_CONF} && exec "$@"', resolv_conf_path, *argv]


# -- scheduling --------------------------------------------------------------------------------------------


def tolerates(tolerations: Sequence[Json], taint: Json) -> bool:
    for t in tolerations:
        effect = t.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        operator = t.get("operator") or "Equal"
        key = t.get("key") or ""
        if operator == "Exists" and (not key or key == taint.get("key")):
            return True
        if operator == "Equal" and key == taint.get("key") and (t.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def binding_check(pod: Json, node_labels: Mapping[str, str], node_taints: Sequence[Json]) -> tuple[bool, str]:
    """Whether this agent binds an unscheduled pod to its node: (ok, reason when not)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return False, "already bound"
    if meta.get("deletionTimestamp"):
        return False, "being deleted"
    if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler":
        return False, f"scheduler {spec.get('schedulerName')} is not ours"
    for key, value in (spec.get("nodeSelector") or {}).items():
        if node_labels.get(key) != value:
            return False, f"node(s) didn't match Pod's node selector {key}={value}"
    tolerations = spec.get("tolerations") or []
    for taint in node_taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return False, f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    return True, ""


# -- restarts ----------------------------------------------------------------------------------------------

BACKOFF_FIRST = 2.0
BACKOFF_MAX = 60.0


def restarts(restart_policy: str, exit_code: int) -> bool:
    """Whether a container that exited with `exit_code` is started again."""
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return exit_code != 0
    return False


def backoff_seconds(restart_count: int) -> float:
    """Delay before restart number `restart_count + 1`: 2 s doubling up to 60 s (the kubelet's 10 s to
    5 min, shortened for a development environment)."""
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, restart_count)))


# -- container states --------------------------------------------------------------------------------------


def tail_lines(text: str, lines: int = 10, max_chars: int = 2048) -> str:
    tail = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return tail[-max_chars:]


def terminated_state(
    exit_code: int, started_at: str, finished_at: str, container_id: str, log_path: str, output_tail: str,
    reason: str | None = None, termination_message: str | None = None,
) -> Json:
    """A `terminated` container state: Completed for 0, Error otherwise. The message is what the process
    wrote to its termination-message file (as a kubelet reports /dev/termination-log); without one it
    names the output file and, for failures, quotes its last lines."""
    message = f"output: {log_path}"
    if exit_code != 0 and output_tail:
        message += "\n" + output_tail
    if termination_message and termination_message.strip():
        message = termination_message
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "message": message[:4096],
            "startedAt": started_at,
            "finishedAt": finished_at,
            "containerID": container_id,
        }
    }


def image_id(image: str) -> str:
    ref = parse_image(image)
    digest = ref.digest or "sha256:" + hashlib.sha256(image.encode()).hexdigest()
    return f"{ref.registry or 'docker.io'}/{ref.repository}@{digest}"


# -- probes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    kind: str  # httpGet | tcpSocket | exec | grpc
    handler: Json
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, probe: Json | None) -> ProbeSpec | None:
        if not probe:
            return None
        for kind in ("httpGet", "tcpSocket", "exec", "grpc"):
            if probe.get(kind) is not None:
                return cls(
                    kind=kind,
                    handler=dict(probe[kind]),
                    initial_delay=float(probe.get("initialDelaySeconds") or 0),
                    period=float(probe.get("periodSeconds") or 10),
                    timeout=float(probe.get("timeoutSeconds") or 1),
                    success_threshold=int(probe.get("successThreshold") or 1),
                    failure_threshold=int(probe.get("failureThreshold") or 3),
                )
        return None

    def scaled(self, factor: float) -> ProbeSpec:
        """The same probe on a faster or slower clock: the initial delay and the period times `factor`, a
        period never under MIN_PROBE_PERIOD. On a faster clock the failure threshold grows so that giving
        up (a startup probe's kill, a readiness probe's "not ready") takes as long as on the real clock:
        success is seen sooner, failure is not declared sooner. The timeout and the success threshold
        stay as they are."""
        if factor == 1:
            return self
        period = max(MIN_PROBE_PERIOD, self.period * factor)
        patience = math.ceil(self.period * self.failure_threshold / period - 1e-9)
        return replace(self, initial_delay=self.initial_delay * factor, period=period,
                       failure_threshold=max(self.failure_threshold, patience))


MIN_PROBE_PERIOD = 0.2
"""Seconds; what a scaled probe period never goes under (`ProbeSpec.scaled`)."""


MAX_TIME_SCALE = 10.0


def parse_time_scale(text: str) -> float:
    """$DEVENV_PROBE_TIME_SCALE or --probe-time-scale: a number in (0, 10]; under 1 a faster clock (the
    test suite), above 1 a slower one (a fleet of hundreds of installations, whose probes load a small
    machine)."""
    try:
        factor = float(text)
    except ValueError:
        factor = 0.0
    if not 0 < factor <= MAX_TIME_SCALE:
        raise ValueError(f"the probe time scale is a number above 0 and at most {MAX_TIME_SCALE:g}, not {text!r}")
    return factor


def resolve_port(port: int | str, container: Json) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a port of container {container.get('name')}")


@dataclass
class ProbeTracker:
    """Consecutive successes/failures against the thresholds. `result` starts as `initial`."""

    spec: ProbeSpec
    result: bool
    successes: int = 0
    failures: int = 0

    def record(self, ok: bool) -> bool:
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.spec.success_threshold:
                self.result = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.spec.failure_threshold:
                self.result = False
        return self.result


# -- pod phase and status ----------------------------------------------------------------------------------


def _state_kind(status: Json) -> str:
    state = status.get("state") or {}
    for kind in ("running", "terminated", "waiting"):
        if state.get(kind) is not None:
            return kind
    return "waiting"


def pod_phase(restart_policy: str, initialized: bool, init_failed: bool, statuses: Sequence[Json]) -> str:
    """The kubelet's getPhase over container statuses: a waiting container after a termination counts as
    stopped (it restarts); a plain waiting one keeps the pod Pending."""
    if init_failed and restart_policy == "Never":
        return "Failed"
    if not initialized:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for s in statuses:
        kind = _state_kind(s)
        if kind == "running":
            running += 1
        elif kind == "terminated":
            stopped += 1
            if (s["state"]["terminated"].get("exitCode") or 0) == 0:
                succeeded += 1
        elif (s.get("lastState") or {}).get("terminated") is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(ctype: str, ok: bool, now: str, previous: Mapping[str, Json], reason: str = "") -> Json:
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status and prev.get(
        "lastTransitionTime") else now
    cond: Json = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason:
        cond["reason"] = reason
    return cond


def pod_conditions(
    phase: str,
    initialized: bool,
    statuses: Sequence[Json],
    readiness_gates: Sequence[Json],
    previous: Sequence[Json],
    now: str,
    sandbox_ready: bool = True,
) -> list[Json]:
    prev = {c["type"]: c for c in previous if c.get("type")}
    terminal = phase in ("Succeeded", "Failed")
    containers_ready = not terminal and bool(statuses) and all(s.get("ready") for s in statuses)
    gates_ok = all((prev.get(g.get("conditionType", "")) or {}).get("status") == "True" for g in readiness_gates)
    not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready and not terminal, now, prev),
        _condition("Initialized", initialized, now, prev, "" if initialized else "ContainersNotInitialized"),
        _condition("ContainersReady", containers_ready, now, prev, "" if containers_ready else not_ready_reason),
        _condition("Ready", containers_ready and gates_ok, now, prev,
                   "" if containers_ready and gates_ok else
                   (not_ready_reason if not containers_ready else "ReadinessGatesNotReady")),
        _condition("PodScheduled", True, now, prev),
    ]
    known = {c["type"] for c in conditions}
    # Conditions other writers own (readiness gates, DisruptionTarget, ...) are kept as they are.
    return conditions + [c for c in previous if c.get("type") not in known]


def pod_status(
    *,
    phase: str,
    pod_ip: str,
    host_ip: str,
    start_time: str,
    init_statuses: Sequence[Json],
    statuses: Sequence[Json],
    initialized: bool,
    readiness_gates: Sequence[Json],
    previous_conditions: Sequence[Json],
    now: str,
    qos_class: str = "BestEffort",
) -> Json:
    status: Json = {
        "phase": phase,
        "conditions": pod_conditions(phase, initialized, statuses, readiness_gates, previous_conditions, now),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": list(statuses),
        "qosClass": qos_class,
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if init_statuses:
        status["initContainerStatuses"] = list(init_statuses)
    return status


def qos_class(containers: Sequence[Json]) -> str:
    requests = limits = 0
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        requests += len(req)
        limits += len(lim)
        for name in ("cpu", "memory"):
            if name not in lim or (name in req and req[name] != lim[name]):
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def is_terminal(pod: Json) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
