"""Start one container from an image's root filesystem: what runc does, with mount(8) and chroot(2).

    unshare --mount --uts --propagation private -- python -m devenv.nodeagent.chroot <spec.json>

Run as root in a private mount namespace (so every mount below vanishes with the container's last
process) and a UTS namespace of its own (the host name is the pod's name, as in a pod), it mounts an
overlay of the image's unpacked root filesystem (`lower`) with a per-run upper directory at `root`, then
/proc, a small /dev (null, zero, full, random, urandom, tty, shm, fd links), the host's /etc/hosts, the
pod's resolv.conf (the host's without cluster DNS), and the pod's binds (emptyDir volumes, the
ServiceAccount directory, the termination-message file); remounts the root read-only when the container asks for
readOnlyRootFilesystem; then chroots, drops to the container's UID, GID and groups (no_new_privs when
privilege escalation is off) and execs the container's argv with exactly its env. The pid stays the same
from `unshare` to the container's program, so the node agent's pid file and process group hold.
The spec is written by `pods.PodWorker` (see `Spec`); nothing here decides anything.
"""

from __future__ import annotations

import ctypes
import json
import os
import posixpath
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
HOST_FILES = ("/etc/hosts", "/etc/resolv.conf")
PR_SET_NO_NEW_PRIVS = 38


@dataclass
class Bind:
    source: str  # on the host
    target: str  # inside the container
    read_only: bool = False


@dataclass
class Spec:
    lower: str
    upper: str
    work: str
    root: str
    argv: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    cwd: str = "/"
    read_only: bool = False
    no_new_privs: bool = False
    hostname: str = ""  # set in the container's own UTS namespace (unshare --uts): the pod's name
    binds: list[Bind] = field(default_factory=list)
    resolv_conf: str = ""  # the pod's resolv.conf (a kubelet's); empty: the host's /etc/resolv.conf

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Spec:
        raw = json.loads(path.read_text())
        raw["binds"] = [Bind(**b) for b in raw.get("binds") or []]
        return cls(**raw)


def resolve_in(root: str, path: str, max_links: int = 40) -> str:
    """`path` inside the tree at `root`, symlinks resolved as if `root` were `/` (an absolute link in the
    image, such as /var/run -> /run, never leads out to the host)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            links += 1
            if links > max_links:
                raise OSError(f"too many levels of symbolic links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _mountpoint(root: str, target: str, is_file: bool) -> str:
    where = resolve_in(root, target)
    if is_file:
        os.makedirs(os.path.dirname(where), exist_ok=True)
        if not os.path.exists(where):
            open(where, "a").close()
    else:
        os.makedirs(where, exist_ok=True)
    return where


def _bind(source: str, where: str, read_only: bool) -> None:
    _mount("--bind", source, where)
    if read_only:
        _mount("-o", "remount,bind,ro", where)


def assemble(spec: Spec) -> None:
    """Every mount of the container, under spec.root (in the caller's mount namespace)."""
    _mount("-t", "overlay", "overlay", "-o", f"lowerdir={spec.lower},upperdir={spec.upper},workdir={spec.work}",
           spec.root)
    root = spec.root
    _mount("-t", "proc", "proc", _mountpoint(root, "/proc", False))
    dev = _mountpoint(root, "/dev", False)
    _mount("-t", "tmpfs", "-o", "nosuid,mode=0755,size=65536k", "tmpfs", dev)
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(f"/dev/{name}", _mountpoint(root, f"/dev/{name}", True), False)
    _mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=1777,size=65536k", "tmpfs", _mountpoint(root, "/dev/shm", False))  # noqa: S108
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, posixpath.join(dev, link))
    for host_file in HOST_FILES:
        source = spec.resolv_conf if host_file == "/etc/resolv.conf" and spec.resolv_conf else host_file
        if os.path.exists(source):
            _bind(source, _mountpoint(root, host_file, True), True)
    for b in spec.binds:
        _bind(b.source, _mountpoint(root, b.target, os.path.isfile(b.source)), b.read_only)
    if spec.read_only:
        _mount("-o", "remount,ro", root)


def enter(spec: Spec) -> None:
    """chroot, drop privileges and exec; never returns."""
    if spec.hostname:
        socket.sethostname(spec.hostname)
    os.chroot(spec.root)
    os.chdir(spec.cwd or "/")
    os.setgroups(spec.groups)
    os.setgid(spec.gid)
    os.setuid(spec.uid)
    if spec.no_new_privs:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    os.execvpe(spec.argv[0], spec.argv, spec.env)  # noqa: S606 - the container's argv, as a runtime execs it


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devenv.nodeagent.chroot <spec.json>", file=sys.stderr)
        return 2
    try:
        spec = Spec.load(Path(argv[0]))
        assemble(spec)
        enter(spec)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"devenv chroot: cannot start the container: {exc}", file=sys.stderr, flush=True)
        return 128
    return 0  # not reached: enter() execs


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
