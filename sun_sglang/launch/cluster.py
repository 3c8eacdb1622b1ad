"""A whole local SUN cluster: decode pool, per-task prefill servers, the gateway."""

from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from router.config import GatewayConfig, PrefillWorker, TaskRoute
from sun_sglang import compat
from sun_sglang.launch.config import ClusterConfig
from sun_sglang.launch.process import ManagedProcess, ServerFailed, port_in_use, stop_all, wait_healthy
from sun_sglang.launch.roles import Device, LoraServing, Role, ServeOptions, ServerSpec, pinned
from sun_sglang.models import MODELS, prepare
from sun_sglang.quant import decode_module

_BOOTSTRAP_OFFSET = 500


def resolve_model(ref: str) -> str:
    """A checkpoint folder as given, or a named model prepared on first use."""
    if Path(ref).is_dir():
        return str(Path(ref).resolve())
    if ref in MODELS:
        return str(prepare(ref))
    raise FileNotFoundError(f"{ref!r} is neither a checkpoint folder nor a known model name")


@dataclass(frozen=True)
class ClusterPlan:
    """Every server of the cluster and the gateway's configuration; nothing started yet."""

    servers: list[ServerSpec]
    gateway: GatewayConfig
    gateway_cpus: str | None = None

    @property
    def decode(self) -> list[ServerSpec]:
        return [s for s in self.servers if s.role == "decode"]


def plan(config: ClusterConfig, device: Device) -> ClusterPlan:
    """Resolve models, check every prefill module against the base, assign ports.
    Raises compat.IncompatibleCheckpoint before anything starts.

    mode sun: one shared decode pool of `decode.replicas` servers holding the base.
    mode conventional (the baseline): each task gets `decode.replicas` decode servers of its own,
    holding the task's own checkpoint; same gateway, same code path."""
    base = str(decode_module(resolve_model(config.base), device))  # QSUN: packed or dequantized
    dtype = compat.serving_dtype(compat.read_config(base), config.dtype)
    options = ServeOptions(
        device=device,
        transfer_backend=config.transfer_backend,
        kv_cache_dtype=config.kv_cache_dtype,
        host="127.0.0.1",
        max_total_tokens=config.max_total_tokens,
    )
    ports = itertools.count(config.first_port)
    servers: list[ServerSpec] = []

    def server(
        role: Role, name: str, model: str, task: str | None = None, lora: LoraServing | None = None
    ) -> ServerSpec:
        port = next(ports)
        extra = config.prefill_args if role == "prefill" else config.decode_args
        cpus = config.cpus.prefill if role == "prefill" else config.cpus.decode
        env = config.prefill_env if role == "prefill" else config.decode_env
        spec = ServerSpec(
            role=role,
            name=name,
            model_path=model,
            port=port,
            dtype=dtype,
            bootstrap_port=port + _BOOTSTRAP_OFFSET if role == "prefill" else None,
            served_model_name=task,
            lora=lora,
            options=msgspec.structs.replace(options, extra_args=extra, cpus=cpus, extra_env=env),
        )
        servers.append(spec)
        return spec

    def prefill_worker(spec: ServerSpec) -> PrefillWorker:  # its KV size bounds its prefix index
        assert spec.bootstrap_port is not None
        return PrefillWorker(spec.url, spec.bootstrap_port, cache_tokens=config.max_total_tokens)

    n_decode = config.decode.replicas
    conventional = config.mode == "conventional"
    shared = [] if conventional else [server("decode", f"decode-{i}", base).url for i in range(n_decode)]
    routes: dict[str, TaskRoute] = {}
    pool_workers = {}
    for pool_name, pool in config.prefill_pools.items():
        adapters = {
            task: resolve_model(t.adapter)
            for task, t in config.tasks.items()
            if t.adapter and t.pool == pool_name
        }
        for task, adapter in adapters.items():
            try:
                compat.check_adapter(adapter, base, pool.max_lora_rank, pool.target_modules)
            except compat.IncompatibleCheckpoint as err:
                raise compat.IncompatibleCheckpoint(f"task {task!r}: {err}") from err
            routes[task] = TaskRoute(model_path=base, pool=pool_name, adapter=task)
        lora = LoraServing(
            adapters, pool.max_lora_rank, pool.target_modules, pool.max_loras_per_batch, pool.max_loaded_loras
        )
        specs = [
            server("prefill", f"prefill-pool-{pool_name}-{r}", base, pool_name, lora)
            for r in range(pool.replicas)
        ]
        pool_workers[pool_name] = [prefill_worker(s) for s in specs]
    for task, task_config in config.tasks.items():
        if task_config.model_path is None:
            continue  # an adapter, above
        ckpt = resolve_model(task_config.model_path)
        try:
            compat.check_prefill_module(ckpt, base, dtype, dtype)
        except compat.IncompatibleCheckpoint as err:
            raise compat.IncompatibleCheckpoint(f"task {task!r}: {err}") from err
        prefill = [server("prefill", f"prefill-{task}-{r}", ckpt, task) for r in range(task_config.replicas)]
        own = (
            [server("decode", f"decode-{task}-{i}", ckpt).url for i in range(n_decode)]
            if conventional
            else None
        )
        routes[task] = TaskRoute(
            model_path=ckpt,
            prefill=[prefill_worker(s) for s in prefill],
            decode=own,
        )
    gateway = GatewayConfig(
        tasks=routes,
        decode=shared,
        prefill_pools=pool_workers,
        host=config.router.host,
        port=config.router.port,
        api_keys=config.router.api_keys,
        admin_token=config.router.admin_token,
        timeouts=config.router.timeouts,
        health_interval_s=config.router.health_interval_s,
        health_timeout_s=config.router.health_timeout_s,
        prefill_policy=config.router.prefill_policy,
        prefill_balance=config.router.prefill_balance,
    )
    return ClusterPlan(servers=servers, gateway=gateway, gateway_cpus=config.cpus.gateway)


class Cluster:
    """Starts a plan's servers and gateway, waits for health, stops everything it started."""

    def __init__(self, cluster_plan: ClusterPlan, log_dir: Path, timeout_s: float) -> None:
        self.plan = cluster_plan
        self.log_dir = log_dir
        self.timeout_s = timeout_s
        self.procs: list[ManagedProcess] = []
        self.startup_s: dict[str, float] = {}

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
        return f"http://{self.plan.gateway.host}:{self.plan.gateway.port}"

    def ports_taken(self) -> list[str]:
        """Ports of this plan that something already answers on: its health checks would be
        answered by that other process (seen: a second cluster 'healthy' in 1 s, the first one's)."""
        wanted = [(s.options.host, s.port, s.name) for s in self.plan.servers]
        wanted += [
            (s.options.host, s.bootstrap_port, f"{s.name} bootstrap")
            for s in self.plan.servers
            if s.bootstrap_port
        ]
        wanted.append((self.plan.gateway.host, self.plan.gateway.port, "gateway"))
        return [f"{host}:{port} ({name})" for host, port, name in wanted if port_in_use(host, port)]

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        taken = self.ports_taken()
        if taken:
            raise ServerFailed(
                f"ports already in use: {', '.join(taken)}; another cluster may be running "
                "(stop it, or set first_port and router.port)"
            )
        try:
            servers = [self._spawn(s.name, s.argv(), s.env(), f"{s.url}/health") for s in self.plan.servers]
            t0 = time.monotonic()
            self.startup_s.update(wait_healthy(servers, self.timeout_s))
            gateway_file = self.log_dir / "gateway.json"
            supervised = str(self.supervision_file)
            gateway_config = msgspec.structs.replace(self.plan.gateway, supervision_file=supervised)
            gateway_file.write_bytes(msgspec.json.encode(gateway_config))
            argv = [sys.executable, "-m", "router", "--config", str(gateway_file)]
            argv = pinned(self.plan.gateway_cpus) + argv
            gateway = self._spawn("gateway", argv, None, f"{self.gateway_url}/health")
            self.startup_s.update(wait_healthy([gateway], timeout_s=120))
            self.startup_s["cluster"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

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
