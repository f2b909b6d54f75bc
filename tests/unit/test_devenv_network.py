"""devenv's network plan (addresses derived from the state directory's path), the pod resolv.conf a
kubelet writes, and the local-process wrapper that gives a process its own resolv.conf."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from devenv import network
from devenv.nodeagent import rules


def test_plan_is_derived_from_the_path_and_differs_between_clones() -> None:
    a = network.plan_for(Path("/home/a/tracardi-operator/.devenv"))
    b = network.plan_for(Path("/home/b/tracardi-operator/.devenv"))
    assert a == network.plan_for(Path("/home/a/tracardi-operator/.devenv"))
    assert a.pod_cidr != b.pod_cidr
    assert a.service_cidr != b.service_cidr
    assert a.table != b.table
    assert network.loopback_pod_ips(Path("/home/a/x/.devenv")) != network.loopback_pod_ips(Path("/home/b/x/.devenv"))


def test_plan_addresses_are_consistent() -> None:
    plan = network.plan_for(Path("/tmp/some-devenv"))
    pods, services = ipaddress.ip_network(plan.pod_cidr), ipaddress.ip_network(plan.service_cidr)
    assert pods.prefixlen == services.prefixlen == 16
    assert not pods.overlaps(services)
    assert ipaddress.ip_address(plan.coredns_ip) in pods
    assert ipaddress.ip_address(plan.dns_ip) in services
    assert plan.dns_ip.endswith(".0.10")
    first, last = rules.parse_pod_ip_range(plan.pod_ips)
    assert first in pods
    assert last in pods
    assert plan.coredns_ip not in {str(first), str(last)}
    assert int(ipaddress.ip_address(plan.coredns_ip)) > int(last)
    # Never 10.0 (the fallback Service range) nor 10.255 (this machine's resolver lives there).
    for slot in range(network.SLOTS):
        p = network.Plan(slot, plan.digest)
        assert p.pod_cidr.split(".")[1] not in ("0", "255")
        assert p.service_cidr.split(".")[1] not in ("0", "255")


def test_a_slot_another_devenv_holds_is_skipped() -> None:
    root = Path("/tmp/some-devenv")
    mine = network.plan_for(root)
    other = network.plan_for(root, taken=[mine.pod_cidr])
    assert other.slot == (mine.slot + 1) % network.SLOTS
    assert network.plan_for(root, taken=[mine.service_cidr]).slot == other.slot


def test_corefile_binds_coredns_and_serves_the_cluster_domain(tmp_path: Path) -> None:
    plan = network.plan_for(tmp_path)
    text = network.corefile(plan, tmp_path / "coredns.kubeconfig", 18181)
    assert f"bind {plan.coredns_ip}" in text
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in text
    assert f"kubeconfig {tmp_path / 'coredns.kubeconfig'} devenv" in text
    assert "ready 127.0.0.1:18181" in text
    assert "forward . /etc/resolv.conf" in text


def test_pod_ip_ranges() -> None:
    assert rules.parse_pod_ip_range("10.148.0.1-10.148.254.254")[0] == ipaddress.ip_address("10.148.0.1")
    assert rules.parse_pod_ip_range("127.3.0.1-127.3.255.254")[1] == ipaddress.ip_address("127.3.255.254")
    for bad in ("127.0.0.1-127.0.0.9", "10.1.0.1-10.2.0.1", "8.8.8.1-8.8.8.9", "10.1.0.9-10.1.0.1"):
        with pytest.raises(ValueError, match="must lie within"):
            rules.parse_pod_ip_range(bad)
    assert rules.next_pod_ip([], None, *rules.parse_pod_ip_range("10.148.0.1-10.148.254.254")) == "10.148.0.1"


HOST = "# generated\nnameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"
DNS = rules.ClusterDns("10.20.0.10")


def _pod(**spec: object) -> rules.Json:
    return {"metadata": {"name": "p", "namespace": "acme"}, "spec": dict(spec)}


def test_resolv_conf_cluster_first_as_a_kubelet_writes_it() -> None:
    assert rules.resolv_conf(_pod(), DNS, HOST) == (
        "nameserver 10.20.0.10\n"
        "search acme.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "options ndots:5\n")


def test_resolv_conf_other_policies() -> None:
    host = "nameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"
    assert rules.resolv_conf(_pod(dnsPolicy="Default"), DNS, HOST) == host
    assert rules.resolv_conf(_pod(), None, HOST) == host  # no cluster DNS: the host's
    assert rules.resolv_conf(_pod(hostNetwork=True), DNS, HOST) == host
    assert rules.resolv_conf(_pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), DNS, HOST).startswith(
        "nameserver 10.20.0.10\n")
    custom = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["x.example"],
                                               "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]})
    assert rules.resolv_conf(custom, DNS, HOST) == "nameserver 1.1.1.1\nsearch x.example\noptions ndots:2 rotate\n"
    merged = rules.resolv_conf(_pod(dnsConfig={"options": [{"name": "ndots", "value": "1"}]}), DNS, HOST)
    assert merged.endswith("options ndots:1\n")


def test_local_process_gets_its_own_resolv_conf_with_the_same_argv() -> None:
    argv = rules.with_resolv_conf(["python", "-m", "x", "a b"], "/s/pods/ns_p.resolv.conf")
    assert argv[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    assert argv[5:7] == ["/bin/sh", "-c"]
    assert argv[7] == 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    assert argv[8:] == ["/s/pods/ns_p.resolv.conf", "python", "-m", "x", "a b"]
