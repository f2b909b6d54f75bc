"""The operator's image, built here without a Docker daemon: `python -m devenv.image build` (`make image`).

The Dockerfile's public base (python:3.11-*-slim-bookworm) cannot be pulled on a machine without a public
registry, so devenv makes a stand-in once: Debian bookworm with python3.11, venv and pip from the apt
mirror the host uses (mmdebstrap), the host's CA certificates inside (pip then works behind a
TLS-inspecting proxy), imported into buildah's storage as `localhost/devenv-python:3.11-bookworm`.
The Dockerfile is then built with buildah (`--isolation chroot`, layers cached) with
`--build-arg PYTHON_IMAGE=<the stand-in>`, tagged `tracardi-operator:dev` and `tracardi-operator:<version>`.
With a public base reachable (`--public-base`), the stand-in is not made and the Dockerfile's default is used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

from devenv.paths import REPO_ROOT

IMAGE = "tracardi-operator"
BASE_IMAGE = "localhost/devenv-python:3.11-bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_EXTRA_CAS = Path("/usr/local/share/ca-certificates")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


class ImageError(Exception):
    """The image cannot be built here; the message says what is missing."""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def buildah_argv(*args: str) -> list[str]:
    """buildah with the storage driver all of devenv uses ($STORAGE_DRIVER, default overlay)."""
    return ["buildah", f"--storage-driver={os.environ.get('STORAGE_DRIVER', 'overlay')}", *args]


def version(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    with open(pyproject, "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def tags(project_version: str) -> list[str]:
    return [f"{IMAGE}:dev", f"{IMAGE}:{project_version}"]


def debian_sources(paths: Sequence[Path] = APT_SOURCES) -> list[Path]:
    """The host's apt source files that name Debian's bookworm (the mirror the host can reach)."""
    found: list[Path] = []
    for p in paths:
        candidates = sorted(p.iterdir()) if p.is_dir() else [p]
        for f in candidates:
            if f.suffix not in (".list", ".sources") or not f.is_file():
                continue
            text = f.read_text(errors="replace")
            if "bookworm" in text and "debian" in text:
                found.append(f)
    return found


def image_exists(name: str) -> bool:
    return subprocess.run(buildah_argv("inspect", "--type", "image", name), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0


def _need(command: str, package: str) -> None:
    if shutil.which(command) is None:
        raise ImageError(f"{command} is missing: `make debs` installs it (Debian package {package})")


def mmdebstrap_argv(target: Path, sources: Sequence[Path], ca_bundle: Path, extra_cas: Sequence[Path]) -> list[str]:
    """mmdebstrap of a minimal bookworm with python3.11, venv and pip, the host's CA certificates and a
    pip.conf naming the bundle (pip's vendored certifi does not know a proxy's CA)."""
    hooks = ['mkdir -p "$1/usr/local/share/ca-certificates"']
    hooks += [f'cp {ca} "$1/usr/local/share/ca-certificates/"' for ca in extra_cas]
    hooks += [
        'chroot "$1" update-ca-certificates',
        f'cp {ca_bundle} "$1/etc/ssl/certs/ca-certificates.crt"',
        'printf "[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n" > "$1/etc/pip.conf"',
        'rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*',
    ]
    argv = ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "--format=tar"]
    argv += [f"--customize-hook={h}" for h in hooks]
    return [*argv, "bookworm", str(target), *map(str, sources)]


def make_base(force: bool = False) -> str:
    """The stand-in base in buildah's storage, made once (about a minute); returns its name."""
    if not force and image_exists(BASE_IMAGE):
        say(f"base {BASE_IMAGE} exists")
        return BASE_IMAGE
    _need("mmdebstrap", "mmdebstrap")
    _need("buildah", "buildah")
    sources = debian_sources()
    if not sources:
        raise ImageError("no apt source for Debian bookworm in /etc/apt/sources.list*: mmdebstrap needs a mirror")
    extra = sorted(HOST_EXTRA_CAS.glob("*.crt")) if HOST_EXTRA_CAS.is_dir() else []
    say(f"making the stand-in base {BASE_IMAGE} with mmdebstrap (sources: {', '.join(map(str, sources))})")
    with tempfile.TemporaryDirectory(prefix="devenv-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(mmdebstrap_argv(tarball, sources, HOST_CA_BUNDLE, extra), check=True)
        ctr = subprocess.run(buildah_argv("from", "scratch"), check=True, capture_output=True,
                             text=True).stdout.strip()
        try:
            subprocess.run(buildah_argv("add", ctr, str(tarball), "/"), check=True)
            subprocess.run(buildah_argv("config", "--env", "LANG=C.UTF-8", "--cmd", "python3", ctr), check=True)
            subprocess.run(buildah_argv("commit", "--rm", ctr, BASE_IMAGE), check=True)
        except BaseException:
            subprocess.run(buildah_argv("rm", ctr), check=False, stdout=subprocess.DEVNULL)
            raise
    return BASE_IMAGE


def build_argv(base: str | None, project_version: str, context: Path = REPO_ROOT) -> list[str]:
    argv = buildah_argv("build", "--isolation", "chroot", "--layers")
    if base is not None:
        argv += ["--build-arg", f"PYTHON_IMAGE={base}"]
    for t in tags(project_version):
        argv += ["--tag", t]
    return [*argv, "--file", str(context / "Dockerfile"), str(context)]


def build(public_base: bool = False) -> None:
    _need("buildah", "buildah")
    started = time.monotonic()
    base = None if public_base else make_base()
    argv = build_argv(base, version())
    say(" ".join(argv))
    subprocess.run(argv, check=True)
    say(f"built {', '.join(tags(version()))} in {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv.image", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the Dockerfile with buildah (the stand-in base first)")
    p_build.add_argument("--public-base", action="store_true", help="use the Dockerfile's own base (pullable)")
    p_base = sub.add_parser("base", help="make the stand-in base")
    p_base.add_argument("--force", action="store_true", help="make it again even if it exists")
    args = parser.parse_args(argv)
    try:
        if args.command == "base":
            make_base(force=args.force)
        else:
            build(public_base=args.public_base)
    except (ImageError, subprocess.CalledProcessError) as e:
        print(f"devenv.image: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
