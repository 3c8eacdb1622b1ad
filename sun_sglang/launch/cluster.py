"""A cluster's servers and gateway on this machine: started, watched, stopped by PID."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import msgspec

from sun_sglang import compat
from sun_sglang.launch.hosts import LOCAL
from sun_sglang.launch.plan import ClusterPlan
from sun_sglang.launch.process import (
    ManagedProcess,
    ServerFailed,
    port_in_use,
    refuses_key,
    stop_all,
    wait_answering,
    wait_healthy,
)
from sun_sglang.launch.roles import ServerSpec, pinned

log = logging.getLogger("sun.launch")


class Cluster:
    """Starts a plan's servers and gateway, waits for health, stops everything it started.

    Across hosts each host runs its own Cluster over the same plan, `here` naming the hosts it
    is (None: every host, one machine): it starts the servers placed there, and the gateway if
    placed there, once the servers elsewhere answer too."""

    def __init__(
        self,
        cluster_plan: ClusterPlan,
        log_dir: Path,
        timeout_s: float,
        here: frozenset[str | None] | None = None,
    ) -> None:
        self.plan = cluster_plan
        self.log_dir = log_dir
        self.timeout_s = timeout_s
        self.here = cluster_plan.hosts if here is None else here
        self.procs: list[ManagedProcess] = []
        self.startup_s: dict[str, float] = {}

    @property
    def servers(self) -> list[ServerSpec]:
        """The servers this host runs."""
        return [s for s in self.plan.servers if s.host_name in self.here]

    @property
    def runs_gateway(self) -> bool:
        return self.plan.gateway_host in self.here

    @property
    def supervision_file(self) -> Path:
        return self.log_dir / "supervisor.json"

    def recheck(self, name: str) -> str | None:
        """Before a prefill server is restarted: does its checkpoint still match the decode
        module (it may have been replaced on disk)? The reason it does not, or None."""
        spec = next((s for s in self.plan.servers if s.name == name), None)
        decode = self.plan.decode[0] if self.plan.decode else None
        if spec is None or spec.role != "prefill" or spec.lora is not None or decode is None:
            return None
        try:
            compat.check_prefill_module(spec.model_path, decode.model_path, spec.dtype, decode.dtype)
        except (compat.IncompatibleCheckpoint, OSError, ValueError) as err:
            return str(err)
        return None

    @property
    def gateway_url(self) -> str:
        return f"http://{self.plan.gateway_address}:{self.plan.gateway.port}"

    def ports_taken(self) -> list[str]:
        """Ports of this plan that something already answers on: its health checks would be
        answered by that other process (seen: a second cluster 'healthy' in 1 s, the first one's)."""
        wanted = [(s.address or LOCAL, s.port, s.name) for s in self.servers]
        for s in self.servers:
            named = {"bootstrap": s.bootstrap_port, "dist": s.dist_port}
            wanted += [(s.address or LOCAL, port, f"{s.name} {what}") for what, port in named.items() if port]
        if self.runs_gateway:
            wanted.append((self.plan.gateway_address, self.plan.gateway.port, "gateway"))
        return [f"{host}:{port} ({name})" for host, port, name in wanted if port_in_use(host, port)]

    def start(self) -> None:
        # Private: the gateway's config holds the keys, and SGLang logs its server_args (--api-key).
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.chmod(0o700)
        taken = self.ports_taken()
        if taken:
            raise ServerFailed(
                f"ports already in use: {', '.join(taken)}; another cluster may be running "
                "(stop it, or set first_port and router.port)"
            )
        try:
            servers = [self._spawn(s.name, s.argv(), s.env(), f"{s.url}/health") for s in self.servers]
            t0 = time.monotonic()
            self.startup_s.update(wait_healthy(servers, self.timeout_s))
            if self.runs_gateway:
                self._start_gateway()
            self.startup_s["cluster"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

    def _start_gateway(self) -> None:
        elsewhere = [f"{s.url}/health" for s in self.plan.servers if s.host_name not in self.here]
        silent = wait_answering(elsewhere, self.timeout_s)
        if silent:  # the gateway routes around them until its health checks see them up
            log.warning("starting the gateway; not answering yet: %s", ", ".join(silent))
        key = self.plan.gateway.server_api_key
        if key and (refused := [s.url for s in self.plan.servers if refuses_key(s.url, key)]):
            raise ServerFailed(
                f"{', '.join(refused)} refused the cluster key: is cluster_key the same on every host?"
            )
        gateway_file = self.log_dir / "gateway.json"
        supervised = str(self.supervision_file)
        gateway_config = msgspec.structs.replace(self.plan.gateway, supervision_file=supervised)
        fd = os.open(gateway_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.encode(gateway_config))
        argv = [sys.executable, "-m", "router", "--config", str(gateway_file)]
        argv = pinned(self.plan.gateway_cpus) + argv
        gateway = self._spawn("gateway", argv, None, f"{self.gateway_url}/health")
        self.startup_s.update(wait_healthy([gateway], timeout_s=120))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None, health: str) -> ManagedProcess:
        proc = ManagedProcess(name, argv, env or dict(os.environ), self.log_dir / f"{name}.log", health)
        proc.start()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """The gateway first: it stops taking requests and lets those in flight finish (which
        needs the servers), writing every answered request's access-log line; then the servers."""
        gateway = [p for p in self.procs if p.name == "gateway"]
        stop_all(gateway, grace_s=self.plan.gateway.shutdown_timeout_s + 5)
        stop_all([p for p in reversed(self.procs) if p.name != "gateway"])

    def describe(self) -> dict:
        return {
            "gateway": self.gateway_url,
            "logs": str(self.log_dir),
            "servers": {p.name: {"pid": p.pid, "url": p.health_url} for p in self.procs},
            "startup_s": {k: round(v, 1) for k, v in self.startup_s.items()},
        }

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
