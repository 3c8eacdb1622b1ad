"""Clusters across hosts, without starting anything: placement in the cluster file, each server's
bind and advertised address, the transfer and control port ranges, the servers' key, and which
servers a host's launcher starts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.hosts import PortRange, check_control_ports, this_host
from sun_sglang.launch.plan import plan
from sun_sglang.launch.role_command import _redacted

ONE_HOST = (
    "tasks: {a: {model_path: x, host: h}}\ndecode: {host: h}\nrouter: {host: h}\n"
    "hosts: {h: {address: 10.0.0.1}}\n"
)
HOSTS = """
hosts:
  d: {address: 10.0.0.2}
  p1: {address: 10.0.0.3, env: {UCX_TLS: tcp}}
  p2: {address: 10.0.0.4, bind: 0.0.0.0}
  g: {address: 10.0.0.5, bind: 0.0.0.0}
router: {host: g, port: 8000}
transfer_ports: {low: 20000, high: 20099}
cluster_key: k3y-cluster
"""


def _load(tmp_path: Path, text: str) -> cluster_config.ClusterConfig:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return cluster_config.load(path)


def _cluster(tmp_path: Path, base: Path, task: Path) -> cluster_config.ClusterConfig:
    return _load(
        tmp_path,
        f"base: {base}\ndecode: {{replicas: 1, host: d}}\n"
        f"tasks:\n  math: {{model_path: {task}, replicas: 3, host: [p1, p2]}}\n" + HOSTS,
    )


def test_each_server_binds_and_advertises_its_hosts_address(
    tmp_path: Path, tiny_base: Path, tiny_task: Path
) -> None:
    cluster = plan(_cluster(tmp_path, tiny_base, tiny_task), "cpu", {"10.0.0.3": "eth1"})
    by_name = {s.name: s for s in cluster.servers}
    assert [by_name[f"prefill-math-{r}"].host_name for r in range(3)] == ["p1", "p2", "p1"]  # round
    p1, p2, decode = by_name["prefill-math-0"], by_name["prefill-math-1"], by_name["decode-0"]
    argv, env = p2.argv(), p2.env({})
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and env["SGLANG_HOST_IP"] == "10.0.0.4"
    assert p2.url == f"http://10.0.0.4:{p2.port}" and decode.url.startswith("http://10.0.0.2:")
    assert "--api-key=k3y-cluster" in argv and argv[argv.index("--nccl-port") + 1] == str(p2.port + 1000)
    assert env["MC_MIN_RPC_PORT"] == "20000" and env["UCX_TCP_PORT_RANGE"] == "20000-20099"
    # UCX on the host's interface (a peer dialling this host's loopback would reach itself).
    assert p1.env({})["UCX_NET_DEVICES"] == "eth1" and p1.env({})["UCX_TLS"] == "tcp"
    assert "UCX_NET_DEVICES" not in p2.env({})  # not this machine: its own launcher names it
    gateway = cluster.gateway
    assert gateway.host == "0.0.0.0" and cluster.gateway_address == "10.0.0.5"
    assert gateway.server_api_key == "k3y-cluster" and gateway.decode == [decode.url]
    assert [w.url for w in gateway.tasks["math"].prefill] == [
        by_name[f"prefill-math-{r}"].url for r in range(3)
    ]
    assert {"10.0.0.2", "10.0.0.3", "127.0.0.1"} <= set(gateway.admin_allowed_hosts)


def test_each_hosts_launcher_starts_its_share(tmp_path: Path, tiny_base: Path, tiny_task: Path) -> None:
    cluster = plan(_cluster(tmp_path, tiny_base, tiny_task), "cpu")
    on = {h: Cluster(cluster, tmp_path, 1, frozenset([h])) for h in ("d", "p1", "p2", "g")}
    assert [s.name for s in on["p1"].servers] == ["prefill-math-0", "prefill-math-2"]
    assert [s.name for s in on["d"].servers] == ["decode-0"] and not on["d"].runs_gateway
    assert not on["g"].servers and on["g"].runs_gateway
    assert on["g"].gateway_url == "http://10.0.0.5:8000"


def test_one_machine_clusters_stay_on_loopback(tmp_path: Path, tiny_base: Path, tiny_task: Path) -> None:
    config = _load(tmp_path, f"base: {tiny_base}\ntasks: {{math: {{model_path: {tiny_task}}}}}\n")
    cluster = plan(config, "cpu")
    assert all(s.url.startswith("http://127.0.0.1:") for s in cluster.servers)
    assert all(
        s.env({})["UCX_NET_DEVICES"] == "lo" and not [a for a in s.argv() if a.startswith("--api-key")]
        for s in cluster.servers
    )
    assert Cluster(cluster, tmp_path, 1).runs_gateway and this_host({}, [], {}) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tasks: {a: {model_path: x, host: h}}\n", "host: needs a hosts: map"),
        ("tasks: {a: {model_path: x}}\nhosts: {h: {address: 10.0.0.1}}\nrouter: {host: h}\n", "places every"),
        (
            "tasks: {a: {model_path: x, host: nope}}\ndecode: {host: h}\nhosts: {h: {address: 10.0.0.1}}\n"
            "router: {host: h}\n",
            r"host \['nope'\] not in hosts",
        ),
        (
            "tasks: {a: {model_path: x, host: h}}\ndecode: {host: h}\nhosts: {h: {address: 10.0.0.1}}\n",
            "router.host '127.0.0.1': name one of hosts",
        ),
        ("tasks: {a: {model_path: x}}\nhosts: {h: {address: gpu-node-1}}\n", "does not appear to be an IPv4"),
        ("tasks: {a: {model_path: x}}\nhosts: {h: {address: 0.0.0.0}}\n", "give the address the other hosts"),
        ("tasks: {a: {model_path: x}}\ntransfer_ports: {low: 20100, high: 20000}\n", "need 1024 <= low"),
        ("tasks: {a: {model_path: x}}\nhosts: {h: {address: 127.0.0.2}}\n", "loopback"),
        ("tasks: {a: {model_path: x}}\nhosts: {h: {address: 'fd00::2'}}\n", "IPv4 only"),
        ("tasks: {a: {model_path: x}}\nhosts: {h: {address: 10.0.0.1, bind: 10.0.0.9}}\n", "its address or"),
        (
            ONE_HOST,
            "across hosts needs cluster_key",
        ),
        (
            ONE_HOST + "cluster_key: short\n",
            "8 or more printable",
        ),
        (
            ONE_HOST + "cluster_key: -starts-with-a-dash\n",
            "not starting with",
        ),
        (
            "tasks: {a: {adapter: x, pool: p, host: h}}\nprefill_pools: {p: {}}\n",
            "an adapter runs on its pool's servers",
        ),
        ("tasks: {a: {model_path: x}}\ntransfer_ports: {low: 30500, high: 30600}\n", "overlaps the servers"),
        (
            "tasks: {a: {model_path: x}}\ntransfer_ports: {low: 20000, high: 20999}\n"
            "control_ports: {low: 20500, high: 21999}\n",
            "overlap",
        ),
        (
            "tasks: {a: {model_path: x}}\ncluster_key: a-good-key-1\n"
            "prefill_args: [--tokenizer-worker-num, '2']\n",
            "ignores --api-key",
        ),
    ],
)
def test_bad_placements_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _load(tmp_path, "base: x\n" + body)


def test_this_host_by_address_or_name() -> None:
    config_hosts = cluster_config.msgspec.yaml.decode(
        b"d: {address: 10.0.0.2}\np: {address: 10.0.0.3}", type=dict[str, cluster_config.HostConfig]
    )
    assert this_host(config_hosts, [], {"10.0.0.3": "eth0", "127.0.0.1": "lo"}) == {"p"}
    assert this_host(config_hosts, ["d"], {"10.0.0.2": "eth0"}) == {"d"}
    with pytest.raises(ValueError, match=r"--this-host d \(10.0.0.2\): not an address of this machine"):
        this_host(config_hosts, ["d"], {"10.0.0.3": "eth0"})
    with pytest.raises(ValueError, match="give --this-host NAME"):
        this_host(config_hosts, [], {"192.168.1.9": "eth0"})
    with pytest.raises(ValueError, match=r"--this-host \['x'\]"):
        this_host(config_hosts, ["x"], {})


def test_control_ports_that_the_host_does_not_have_are_said(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    proc = tmp_path / "ip_local_port_range"
    proc.write_text("32768\t60999\n")
    with caplog.at_level(logging.WARNING, logger="sun.launch"):
        check_control_ports(PortRange(41000, 41999), proc)
        assert "net.ipv4.ip_local_port_range='41000 41999'" in caplog.text
        caplog.clear()
        check_control_ports(PortRange(32768, 60999), proc)
        assert not caplog.text


def test_the_role_command_line_shown_hides_the_key() -> None:
    shown = _redacted(["python", "--api-key", "s3cret", "--port", "1", "--api-key=s3cret"])
    assert "s3cret" not in " ".join(shown) and shown[2] == "***"
