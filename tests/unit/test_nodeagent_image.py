"""The node agent's image containers: the kubelet's rules for argv, env, user and mounts (pure), the
path resolution inside a root filesystem (chroot), and how `make image` calls mmdebstrap and buildah."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devenv import image as image_build
from devenv.nodeagent import chroot, rules
from devenv.nodeagent.rules import EnvError, ImageConfig, RunnerKind

OPERATOR = ImageConfig(id="abc", entrypoint=("tracardi-operator",), cmd=("run",), working_dir="",
                       env=("PATH=/opt/venv/bin:/usr/bin", "HOME=/tmp"), user="65532:65532")


def test_operator_image_runs_from_the_image_only_when_built_here() -> None:
    assert rules.runner_for("tracardi-operator:dev", True, image_built=True).kind is RunnerKind.IMAGE
    assert rules.runner_for("tracardi-operator:dev", True, image_built=False).kind is RunnerKind.OPERATOR
    assert rules.runner_for("tracardi/tracardi-api:0.8.1", True, image_built=True).kind is RunnerKind.SIMULATOR


@pytest.mark.parametrize(("container", "argv"), [
    ({}, ["tracardi-operator", "run"]),
    ({"args": ["job", "install"]}, ["tracardi-operator", "job", "install"]),
    ({"command": ["python", "-c", "1"]}, ["python", "-c", "1"]),
    ({"command": ["sh"], "args": ["-c", "echo $(NAME)"]}, ["sh", "-c", "echo acme"]),
    ({"args": []}, ["tracardi-operator", "run"]),
])
def test_argv_as_the_kubelet_combines_entrypoint_cmd_command_args(container: dict[str, object],
                                                                   argv: list[str]) -> None:
    assert rules.image_argv(OPERATOR, container, {"NAME": "acme"}) == argv


def test_no_command_at_all_is_refused() -> None:
    with pytest.raises(EnvError, match="no command"):
        rules.image_argv(ImageConfig(id="x"), {}, {})


def test_env_is_image_then_service_then_container() -> None:
    env = rules.image_env(OPERATOR, {"HOME": "/home/x", "A": "1"}, apiserver_host="127.0.0.1",
                          apiserver_port=6443, hostname="pod-1")
    assert env["PATH"] == "/opt/venv/bin:/usr/bin"
    assert env["HOME"] == "/home/x"
    assert env["HOSTNAME"] == "pod-1"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert "TRACARDI_OPERATOR_SA_DIR" not in env, "in an image the token is where Kubernetes mounts it"


PASSWD = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:\n"


@pytest.mark.parametrize(("pod_sc", "c_sc", "user", "who"), [
    ({}, {}, "65532:65532", rules.Identity(65532, 65532, (65532,))),
    ({"runAsUser": 7, "runAsGroup": 8, "fsGroup": 9}, {}, "65532:65532", rules.Identity(7, 8, (8, 9))),
    ({"runAsUser": 7}, {"runAsUser": 70}, "", rules.Identity(70, 0, (0,))),
    ({}, {}, "app", rules.Identity(1000, 1001, (1001,))),
    ({}, {}, "app:staff", rules.Identity(1000, 50, (50,))),
    ({}, {}, "", rules.Identity(0, 0, (0,))),
    ({"supplementalGroups": [5, 6]}, {}, "1:2", rules.Identity(1, 2, (2, 5, 6))),
])
def test_run_as(pod_sc: dict[str, object], c_sc: dict[str, object], user: str, who: rules.Identity) -> None:
    pod = {"spec": {"securityContext": pod_sc}}
    assert rules.run_as(pod, {"securityContext": c_sc}, user, PASSWD, GROUP) == who


def test_run_as_non_root_refuses_root_and_unknown_users() -> None:
    with pytest.raises(EnvError, match="runAsNonRoot"):
        rules.run_as({"spec": {"securityContext": {"runAsNonRoot": True}}}, {}, "", PASSWD, GROUP)
    with pytest.raises(EnvError, match="unable to find user nobody"):
        rules.run_as({}, {}, "nobody", PASSWD, GROUP)


def test_mounts_of_the_operator_pod() -> None:
    pod = {"spec": {"volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "kube-api-access-x", "projected": {}},
                                {"name": "conf", "configMap": {"name": "c"}}]}}
    container = {"volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                                  {"name": "kube-api-access-x", "mountPath": rules.SA_MOUNT_PATH, "readOnly": True},
                                  {"name": "conf", "mountPath": "/etc/conf"}],
                 "terminationMessagePath": "/dev/termination-log"}
    mounts, unsupported = rules.container_mounts(pod, container)
    assert mounts == [rules.Mount("/tmp", "tmp", "emptyDir"),
                      rules.Mount(rules.SA_MOUNT_PATH, "", "serviceaccount", True),
                      rules.Mount("/dev/termination-log", "", "termination-log")]
    assert unsupported == ["conf at /etc/conf"]
    no_token = {"spec": {"automountServiceAccountToken": False}}
    assert [m.kind for m in rules.container_mounts(no_token, {})[0]] == ["termination-log"]


def test_security_context_flags() -> None:
    c = {"securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}}
    assert rules.read_only_root(c)
    assert rules.no_new_privileges(c)
    assert not rules.read_only_root({})
    assert not rules.no_new_privileges({})


def test_resolve_in_keeps_absolute_links_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var" / "run")
    os.symlink("../../..", tmp_path / "run" / "up")
    assert chroot.resolve_in(str(tmp_path), "/var/run/secrets/x") == str(tmp_path / "run" / "secrets" / "x")
    assert chroot.resolve_in(str(tmp_path), "/run/up/etc") == str(tmp_path / "etc")


def test_spec_round_trips(tmp_path: Path) -> None:
    spec = chroot.Spec(lower="/l", upper="/u", work="/w", root="/r", argv=["a"], env={"A": "1"}, uid=1, gid=2,
                       groups=[2], read_only=True, binds=[chroot.Bind("/s", "/t", True)])
    spec.dump(tmp_path / "spec.json")
    assert chroot.Spec.load(tmp_path / "spec.json") == spec


def test_build_argv_passes_the_stand_in_base_and_both_tags() -> None:
    argv = image_build.build_argv("localhost/devenv-python:3.11-bookworm", "0.1.0", Path("/repo"))
    assert argv[:2] == ["buildah", "--storage-driver=overlay"] or argv[1].startswith("--storage-driver=")
    assert argv[3:5] == ["--isolation", "chroot"]
    assert "--layers" in argv
    assert "PYTHON_IMAGE=localhost/devenv-python:3.11-bookworm" in argv
    assert argv.count("--tag") == 2
    assert "tracardi-operator:dev" in argv
    assert "tracardi-operator:0.1.0" in argv
    assert not any(a.startswith("PYTHON_IMAGE=") for a in image_build.build_argv(None, "0.1.0", Path("/repo")))


def test_mmdebstrap_gets_the_host_mirror_and_certificates(tmp_path: Path) -> None:
    argv = image_build.mmdebstrap_argv(tmp_path / "r.tar", [Path("/etc/apt/sources.list.d/debian.sources")],
                                       Path("/etc/ssl/certs/ca-certificates.crt"), [Path("/x/proxy.crt")])
    assert argv[-3:] == ["bookworm", str(tmp_path / "r.tar"), "/etc/apt/sources.list.d/debian.sources"]
    assert any("python3-venv" in a for a in argv)
    hooks = " ".join(a for a in argv if a.startswith("--customize-hook="))
    assert "cp /x/proxy.crt" in hooks
    assert "update-ca-certificates" in hooks
    assert "pip.conf" in hooks


def test_debian_sources_found(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text("URIs: http://deb.debian.org/debian\nSuites: bookworm\n")
    (tmp_path / "other.list").write_text("deb https://example.test/apt stable main\n")
    (tmp_path / "x.sources.disabled").write_text("bookworm debian\n")
    assert image_build.debian_sources([tmp_path]) == [tmp_path / "debian.sources"]


def test_version_and_tags() -> None:
    assert image_build.tags(image_build.version()) == ["tracardi-operator:dev", "tracardi-operator:0.1.0"]
