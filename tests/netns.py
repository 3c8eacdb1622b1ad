"""Hosts on one machine: Linux network namespaces joined by a bridge (needs root and iproute2).

Each host gets its own namespace, address and port space, loopback up, and an ephemeral port
range of its own (32768-40999), so that the ports the OS picks are known. Everything created is removed on
exit: namespaces and bridges outlive the processes in them."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

EPHEMERAL = (32768, 40999)


def available() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("ss") is None:
        return "iproute2 (ip, ss) is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Hosts:
    names: list[str]
    subnet: str = "10.231.7"  # /24; host i gets .(i + 2)
    tag: str = field(default_factory=lambda: f"s{os.getpid() % 100000}")
    addresses: dict[str, str] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def __enter__(self) -> Hosts:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("link", "set", self.bridge, "up")
            for i, name in enumerate(self.names):
                ns, veth = self.ns(name), f"{self.tag}v{i}"
                address = f"{self.subnet}.{i + 2}"
                _ip("netns", "add", ns)
                _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
                _ip("link", "set", f"{veth}p", "netns", ns)
                _ip("link", "set", veth, "master", self.bridge)
                _ip("link", "set", veth, "up")
                _ip("-n", ns, "addr", "add", f"{address}/24", "dev", f"{veth}p")
                _ip("-n", ns, "link", "set", f"{veth}p", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                low, high = EPHEMERAL
                self.run(name, ["sysctl", "-q", "-w", f"net.ipv4.ip_local_port_range={low} {high}"])
                self.addresses[name] = address
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            subprocess.run(["ip", "netns", "del", self.ns(name)], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)

    def argv(self, name: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(name), *argv]

    def run(self, name: str, argv: list[str], timeout: float = 60) -> str:
        out = subprocess.run(
            self.argv(name, argv), check=True, capture_output=True, text=True, timeout=timeout
        )
        return out.stdout

    def listening(self, name: str) -> set[tuple[str, int]]:
        """(address, port) of every TCP socket listening in the host's namespace."""
        found = set()
        for line in self.run(name, ["ss", "-tlnH"]).splitlines():
            local = line.split()[3]
            address, _, port = local.rpartition(":")
            found.add((address.strip("[]"), int(port)))
        return found

    def connections(self, name: str) -> set[tuple[str, int]]:
        """(peer address, peer port) of every established TCP connection in the namespace."""
        found = set()
        for line in self.run(name, ["ss", "-tnH", "state", "established"]).splitlines():
            address, _, port = line.split()[3].rpartition(":")
            found.add((address.strip("[]").removeprefix("::ffff:"), int(port)))
        return found
