"""Where each server runs: the cluster file's hosts, addresses and transfer port ranges.

One cluster file describes every host; each host runs `launch cluster --config FILE` and starts
the servers placed on it (and the gateway, if placed there). A host is known by its address: the
one the other hosts reach it at, which SGLang also advertises (SGLANG_HOST_IP) for its bootstrap,
ZMQ control and transfer endpoints.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import msgspec
import psutil

log = logging.getLogger("sun.launch")

LOCAL = "127.0.0.1"
_ANY = {"0.0.0.0", "::"}


class HostConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    address: str  # reachable from the other hosts; must be an address of one of this host's interfaces
    bind: str | None = None  # what the servers listen on (default: address; "0.0.0.0": every interface)
    env: dict[str, str] = {}  # added to this host's servers (e.g. UCX_NET_DEVICES, MC_GID_INDEX)

    def __post_init__(self) -> None:
        ip = ipaddress.ip_address(self.address)  # ValueError names it: hostnames resolve differently
        if self.address in _ANY:
            raise ValueError(f"host address {self.address}: give the address the other hosts reach")
        if ip.is_loopback:  # every machine has it: each would take itself for this host
            raise ValueError(f"host address {self.address}: loopback; give the host's own network address")
        if ip.version != 4:
            raise ValueError(f"host address {self.address}: IPv4 only for now (URLs and bootstrap hosts)")
        if self.bind not in (None, self.address, "0.0.0.0"):
            raise ValueError(f"host {self.address}: bind {self.bind!r}: its address or 0.0.0.0")

    @property
    def listen(self) -> str:
        return self.bind or self.address


class PortRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Ports a firewall can name. transfer_ports: mooncake's RPC and data port
    (MC_MIN_RPC_PORT..MC_MAX_RPC_PORT), UCX's TCP ports (UCX_TCP_PORT_RANGE). control_ports: the
    host's ephemeral range, where SGLang's ZMQ sockets bind."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1024 <= self.low <= self.high <= 65535:
            raise ValueError(f"port range {self.low}-{self.high}: need 1024 <= low <= high <= 65535")

    def overlaps(self, low: int, high: int) -> bool:
        return self.low <= high and low <= self.high

    def env(self) -> dict[str, str]:
        return {
            "MC_MIN_RPC_PORT": str(self.low),
            "MC_MAX_RPC_PORT": str(self.high),
            "UCX_TCP_PORT_RANGE": f"{self.low}-{self.high}",
        }


Placement = str | list[str] | None  # a host name, replicas spread over several, or this machine


def host_of(placement: Placement, replica: int) -> str | None:
    """The host of replica `replica`: replicas go round the listed hosts in order."""
    if placement is None or isinstance(placement, str):
        return placement
    return placement[replica % len(placement)]


def names(placement: Placement) -> list[str]:
    if placement is None:
        return []
    return [placement] if isinstance(placement, str) else list(placement)


def local_addresses() -> dict[str, str]:
    """This machine's interface addresses -> interface names (psutil). Read once, at the edge."""
    found: dict[str, str] = {}
    for iface, addrs in psutil.net_if_addrs().items():
        for addr in addrs:
            found.setdefault(addr.address.split("%")[0], iface)
    return found


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def this_host(
    hosts: dict[str, HostConfig], named: list[str], interfaces: dict[str, str]
) -> frozenset[str | None] | None:
    """The hosts of the cluster file that this machine is: named, or those whose address is one
    of this machine's interfaces. None when the file has no hosts (everything runs here)."""
    if not hosts:
        if named:
            raise ValueError("--this-host: the cluster file has no hosts:")
        return None
    unknown = [n for n in named if n not in hosts]
    if unknown:
        raise ValueError(f"--this-host {unknown}: not in hosts: {sorted(hosts)}")
    if elsewhere := [f"{n} ({hosts[n].address})" for n in named if hosts[n].address not in interfaces]:
        raise ValueError(f"--this-host {', '.join(elsewhere)}: not an address of this machine")
    here = named or [n for n, h in hosts.items() if h.address in interfaces]
    if not here:
        raise ValueError(f"no host of {sorted(hosts)} has an address of this machine: give --this-host NAME")
    return frozenset(here)


def check_control_ports(
    wanted: PortRange, proc: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")
) -> None:
    """SGLang's ZMQ control sockets bind port 0: they land in the host's ephemeral range, which
    only the host's sysctl sets. Said at start, where a firewall would otherwise drop them."""
    try:
        low, high = (int(x) for x in proc.read_text().split())
    except (OSError, ValueError):
        return
    if (low, high) != (wanted.low, wanted.high):
        log.warning(
            "control_ports %d-%d, but this host's ephemeral range is %d-%d: "
            "sysctl -w net.ipv4.ip_local_port_range='%d %d'",
            wanted.low,
            wanted.high,
            low,
            high,
            wanted.low,
            wanted.high,
        )
