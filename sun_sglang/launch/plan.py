"""The plan of a cluster: every server's command line, port and host, and the gateway's config."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import msgspec

from router.config import GatewayConfig, PrefillWorker, TaskRoute
from router.parsers import check_reasoning_parsers, check_tool_parsers
from sun_sglang import compat
from sun_sglang.launch.config import ClusterConfig
from sun_sglang.launch.hosts import LOCAL, Placement, host_of
from sun_sglang.launch.roles import Device, LoraServing, Role, ServeOptions, ServerSpec
from sun_sglang.models import resolve_model
from sun_sglang.quant import decode_module

_BOOTSTRAP_OFFSET = 500
_DIST_OFFSET = 1000


@dataclass(frozen=True)
class ClusterPlan:
    """Every server of the cluster and the gateway's configuration; nothing started yet."""

    servers: list[ServerSpec]
    gateway: GatewayConfig
    gateway_cpus: str | None = None
    gateway_host: str | None = None  # the host it runs on (None: this machine)
    gateway_address: str = LOCAL  # where clients reach it

    @property
    def decode(self) -> list[ServerSpec]:
        return [s for s in self.servers if s.role == "decode"]

    @property
    def hosts(self) -> set[str | None]:
        return {s.host_name for s in self.servers} | {self.gateway_host}


def plan(config: ClusterConfig, device: Device, interfaces: dict[str, str] | None = None) -> ClusterPlan:
    """Resolve models, check every prefill module against the base, assign ports and hosts.
    Raises compat.IncompatibleCheckpoint before anything starts. `interfaces` (this machine's
    addresses -> interface names) name the UCX device of the servers placed here, on CPU.

    mode sun: one shared decode pool of `decode.replicas` servers holding the base.
    mode conventional (the baseline): each task gets `decode.replicas` decode servers of its own,
    holding the task's own checkpoint; same gateway, same code path."""
    check_tool_parsers({name: t.tool_call_parser for name, t in config.tasks.items() if t.tool_call_parser})
    check_reasoning_parsers(
        {name: t.reasoning_parser for name, t in config.tasks.items() if t.reasoning_parser}
    )
    base = str(decode_module(resolve_model(config.base), device))  # QSUN: packed or dequantized
    dtype = compat.serving_dtype(compat.read_config(base), config.dtype)
    options = ServeOptions(
        device=device,
        transfer_backend=config.transfer_backend,
        kv_cache_dtype=config.kv_cache_dtype,
        host=LOCAL,
        max_total_tokens=config.kv_tokens(device),
        transfer_ports=config.transfer_ports,
        api_key=config.cluster_key,
        reasoning_parser=config.reasoning_parser,
    )
    ports = itertools.count(config.first_port)
    servers: list[ServerSpec] = []

    def server(
        role: Role,
        name: str,
        model: str,
        placement: Placement,
        replica: int,
        task: str | None = None,
        lora: LoraServing | None = None,
    ) -> ServerSpec:
        port = next(ports)
        extra = config.prefill_args if role == "prefill" else config.decode_args
        cpus = config.cpus.prefill if role == "prefill" else config.cpus.decode
        env = config.prefill_env if role == "prefill" else config.decode_env
        host_name = host_of(placement, replica)
        where = {}
        if host_name is not None:
            host = config.hosts[host_name]
            net_device = (interfaces or {}).get(host.address) if device == "cpu" else None
            where = {"host": host.listen, "advertise": host.address, "net_device": net_device}
            env = {**env, **host.env}  # the host's own settings (its NIC, say) win
        spec = ServerSpec(
            role=role,
            name=name,
            model_path=model,
            port=port,
            dtype=dtype,
            bootstrap_port=port + _BOOTSTRAP_OFFSET if role == "prefill" else None,
            dist_port=port + _DIST_OFFSET,
            served_model_name=task,
            lora=lora,
            host_name=host_name,
            options=msgspec.structs.replace(options, extra_args=extra, cpus=cpus, extra_env=env, **where),
        )
        servers.append(spec)
        return spec

    def prefill_worker(spec: ServerSpec) -> PrefillWorker:  # its KV size bounds its prefix index
        assert spec.bootstrap_port is not None
        return PrefillWorker(spec.url, spec.bootstrap_port, cache_tokens=config.kv_tokens(device))

    pool_adapters = {
        pool_name: {
            task: resolve_model(t.adapter)
            for task, t in config.tasks.items()
            if t.adapter and t.pool == pool_name
        }
        for pool_name in config.prefill_pools
    }
    for pool_name, pool in config.prefill_pools.items():
        for task, adapter in pool_adapters[pool_name].items():
            try:
                compat.check_adapter(adapter, base, pool.max_lora_rank, pool.target_modules)
            except compat.IncompatibleCheckpoint as err:
                raise compat.IncompatibleCheckpoint(f"task {task!r}: {err}") from err
    n_decode = config.decode.replicas
    conventional = config.mode == "conventional"
    where_decode = config.decode.host
    decode_lora = _decode_lora(config, pool_adapters) if config.mode == "multi_lora" else None
    shared = (
        []
        if conventional
        else [
            server("decode", f"decode-{i}", base, where_decode, i, lora=decode_lora).url
            for i in range(n_decode)
        ]
    )
    routes: dict[str, TaskRoute] = {}
    pool_workers = {}
    for pool_name, pool in config.prefill_pools.items():
        adapters = pool_adapters[pool_name]
        for task in adapters:
            spec = config.tasks[task]
            routes[task] = TaskRoute(
                model_path=base,
                pool=pool_name,
                adapter=task,
                tool_call_parser=spec.tool_call_parser,
                reasoning_parser=spec.reasoning_parser,
            )
        lora = LoraServing(
            adapters, pool.max_lora_rank, pool.target_modules, pool.max_loras_per_batch, pool.max_loaded_loras
        )
        specs = [
            server("prefill", f"prefill-pool-{pool_name}-{r}", base, pool.host, r, pool_name, lora)
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
        prefill = [
            server("prefill", f"prefill-{task}-{r}", ckpt, task_config.host, r, task)
            for r in range(task_config.replicas)
        ]
        own = (
            [server("decode", f"decode-{task}-{i}", ckpt, where_decode, i).url for i in range(n_decode)]
            if conventional
            else None
        )
        routes[task] = TaskRoute(
            model_path=ckpt,
            prefill=[prefill_worker(s) for s in prefill],
            decode=own,
            tool_call_parser=task_config.tool_call_parser,
            reasoning_parser=task_config.reasoning_parser,
        )
    router_host = config.hosts.get(config.router.host)
    gateway = GatewayConfig(
        tasks=routes,
        decode=shared,
        prefill_pools=pool_workers,
        host=router_host.listen if router_host else config.router.host,
        port=config.router.port,
        api_keys=config.router.api_keys,
        admin_token=config.router.admin_token,
        admin_allowed_hosts=[LOCAL, "localhost", "::1", *(h.address for h in config.hosts.values())]
        if config.router.admin_allowed_hosts is None
        else config.router.admin_allowed_hosts,
        timeouts=config.router.timeouts,
        health_interval_s=config.router.health_interval_s,
        health_timeout_s=config.router.health_timeout_s,
        prefill_policy=config.router.prefill_policy,
        prefill_balance=config.router.prefill_balance,
        server_api_key=config.cluster_key,
        decode_adapters=config.mode == "multi_lora",
    )
    return ClusterPlan(
        servers=servers,
        gateway=gateway,
        gateway_cpus=config.cpus.gateway,
        gateway_host=config.router.host if router_host else None,
        gateway_address=router_host.address if router_host else config.router.host,
    )


def _decode_lora(config: ClusterConfig, pool_adapters: dict[str, dict[str, str]]) -> LoraServing:
    """Mode multi_lora: every decode server holds every pool's adapters, within the pools' limits."""
    pools = config.prefill_pools.values()
    modules = tuple(dict.fromkeys(m for p in pools for m in p.target_modules))
    adapters = {task: path for each in pool_adapters.values() for task, path in each.items()}
    return LoraServing(
        adapters, max(p.max_lora_rank for p in pools), modules, config.decode.max_loras_per_batch, None
    )
