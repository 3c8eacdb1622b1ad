"""The cluster file (launch/*.yaml), parsed once into frozen structs with derived values."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from router.config import TASK_NAME, Timeouts, check_key
from router.policy import CacheAwareConfig
from router.pools import PrefillPolicy
from sun_sglang.adapters import ALL_LINEAR
from sun_sglang.launch.hosts import HostConfig, Placement, PortRange, names
from sun_sglang.launch.roles import Backend, kv_tokens
from sun_sglang.launch.supervise import SupervisionConfig


class TaskConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A full-copy prefill module on its own servers (model_path, replicas), or a LoRA adapter
    served by a shared multi-LoRA prefill pool (adapter, pool)."""

    model_path: str | None = None  # a checkpoint folder, or the name of a model from sun_sglang.models
    replicas: int = 1
    adapter: str | None = None  # a peft LoRA adapter folder or model name, trained on the base
    pool: str | None = None  # the prefill pool (prefill_pools) that serves it
    host: Placement = None  # a name from hosts:, or a list that the replicas go round
    # SGLang's parser of this model's tool calls (qwen25, llama3, hermes, ...): the gateway renders
    # `tools` with the task's template and parses the calls out of its answers.
    tool_call_parser: str | None = None
    # SGLang's parser of its thinking (qwen3, deepseek-r1, ...): answers carry reasoning_content,
    # and every server gets --reasoning-parser (one per cluster: the decode pool is shared).
    reasoning_parser: str | None = None


class PrefillPoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Prefill servers that hold the base and serve many tasks' LoRA adapters (SGLang multi-LoRA).
    The limits bound what can be loaded at run time too."""

    replicas: int = 1
    max_lora_rank: int = 64
    target_modules: tuple[str, ...] = ALL_LINEAR
    max_loras_per_batch: int = 8  # adapters in one prefill batch
    max_loaded_loras: int | None = None  # adapters held in memory (None: no limit)
    host: Placement = None


class DecodeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    replicas: int = 1
    host: Placement = None
    max_loras_per_batch: int = 8  # mode multi_lora: adapters in one decode batch


class RouterSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"  # a name from hosts: (the gateway runs there), or the address it listens on
    port: int = 8000
    api_keys: list[str] = []  # if set, clients need "Authorization: Bearer KEY"
    admin_token: str | None = None  # enables the admin API (/admin/*)
    # Hosts whose servers the admin API may join (default: loopback and every address of hosts:).
    admin_allowed_hosts: list[str] | None = None
    timeouts: Timeouts = Timeouts()  # connect, first token, between tokens, whole request
    health_interval_s: float = 5.0  # worker health probes (0: off)
    health_timeout_s: float = 5.0
    prefill_policy: PrefillPolicy = "cache_aware"  # or least_load, round_robin
    prefill_balance: CacheAwareConfig = CacheAwareConfig()  # when a prefix or session holder keeps one


class CpuPins(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """taskset CPU lists ("0", "2-3"), so that benchmark runs give each role the same cores."""

    prefill: str | None = None
    decode: str | None = None
    gateway: str | None = None


class ClusterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base: str  # the decode module: the frozen base checkpoint (folder or model name)
    tasks: dict[str, TaskConfig]
    prefill_pools: dict[str, PrefillPoolConfig] = {}  # multi-LoRA prefill pools, by name
    # sun: one decode pool of decode.replicas base servers shared by every task.
    # conventional (baseline): decode.replicas decode servers per task, holding the task's model.
    # multi_lora (baseline, adapter tasks only): the shared decode servers hold every adapter too and
    # decode each request with its own (SGLang multi-LoRA batches): multi-LoRA PD, not SUN.
    mode: Literal["sun", "conventional", "multi_lora"] = "sun"
    transfer_backend: Backend = "mooncake_tcp"
    decode: DecodeConfig = DecodeConfig()
    router: RouterSection = RouterSection()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: str = "auto"  # one explicit dtype for every server, resolved from the base if auto
    kv_cache_dtype: str = "auto"
    max_total_tokens: int | None = None  # each server's KV cache in tokens (None: 4096 on CPU, else SGLang's)
    first_port: int = 30000  # servers take ports from here; bootstrap +500, torch.distributed +1000
    log_dir: str | None = None
    startup_timeout_s: float = 300.0
    prefill_args: list[str] = []  # passed through to every prefill server
    decode_args: list[str] = []  # passed through to every decode server
    prefill_env: dict[str, str] = {}  # added to every prefill server's environment
    decode_env: dict[str, str] = {}  # e.g. SGLang's test-only SGLANG_TEST_DISAGG_FAILURE_PROB
    cpus: CpuPins = CpuPins()
    supervision: SupervisionConfig = SupervisionConfig()  # restarts of servers that exit or hang
    # Several machines: host name -> address; tasks, pools, decode and router say where they run.
    hosts: dict[str, HostConfig] = {}
    transfer_ports: PortRange | None = None  # pin the transfer engines' ports (firewalls)
    # SGLang's ZMQ control sockets (prefill <-> decode) bind port 0: the host's ephemeral range,
    # net.ipv4.ip_local_port_range. Set it on each host (the launcher checks); k8s sets it per pod.
    control_ports: PortRange | None = None
    # SGLang's --api-key on every server: only who holds it (the gateway) gets past /health.
    cluster_key: str | None = None

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("a cluster needs at least one task")
        for name, task in self.tasks.items():
            if not TASK_NAME.match(name):
                raise ValueError(f"task name {name!r}: use letters, digits, '_', '.', '-' only")
            if task.replicas < 1:
                raise ValueError(f"task {name!r}: replicas must be at least 1")
            if (task.model_path is None) == (task.adapter is None):
                raise ValueError(f"task {name!r}: give model_path (a full copy) or adapter (LoRA), not both")
            if task.adapter is not None:
                if task.pool not in self.prefill_pools:
                    raise ValueError(
                        f"task {name!r}: an adapter needs pool: one of {sorted(self.prefill_pools)}"
                    )
                if self.mode == "conventional":
                    raise ValueError(
                        f"task {name!r}: adapter tasks need mode sun or multi_lora (a shared decode pool)"
                    )
            elif self.mode == "multi_lora":
                raise ValueError(f"task {name!r}: mode multi_lora serves adapter tasks only")
            elif task.pool is not None:
                raise ValueError(f"task {name!r}: a full-copy task has its own servers, not a pool")
        for name, pool in self.prefill_pools.items():
            if not TASK_NAME.match(name) or pool.replicas < 1 or pool.max_lora_rank < 1:
                raise ValueError(f"prefill pool {name!r}: a plain name, replicas >= 1, max_lora_rank >= 1")
        if self.decode.replicas < 1 or self.decode.max_loras_per_batch < 1:
            raise ValueError("decode.replicas and decode.max_loras_per_batch must be at least 1")
        self._check_placement()
        self._check_ports()
        self._check_key()
        if len({t.reasoning_parser for t in self.tasks.values()} - {None}) > 1:
            raise ValueError(
                "reasoning_parser: one per cluster (every server of the shared decode pool runs it)"
            )

    @property
    def reasoning_parser(self) -> str | None:
        """The servers' --reasoning-parser: that of the cluster's reasoning tasks, if any."""
        return next((t.reasoning_parser for t in self.tasks.values() if t.reasoning_parser), None)

    def kv_tokens(self, device: str) -> int | None:
        return kv_tokens(self.max_total_tokens, device)

    def _check_key(self) -> None:
        if self.cluster_key is not None:
            check_key("cluster_key", self.cluster_key)
            args = self.prefill_args + self.decode_args
            if any(a.startswith("--tokenizer-worker-num") for a in args):
                # SGLang leaves its API-key middleware out with several tokenizer workers.
                raise ValueError("cluster_key: SGLang ignores --api-key with --tokenizer-worker-num")
        elif self.hosts:
            raise ValueError(
                "a cluster across hosts needs cluster_key (SGLang's --api-key on every server): "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )

    def _check_ports(self) -> None:
        # HTTP from first_port, bootstrap +500, torch.distributed +1000 (plan.py)
        n = self.server_count
        if n > 500 or self.first_port + 1000 + n > 65535:
            raise ValueError(
                f"first_port {self.first_port}: {n} servers need first_port + 1000 + {n} <= 65535"
            )
        taken = (self.first_port, self.first_port + 1000 + n)
        for what, span in (("transfer_ports", self.transfer_ports), ("control_ports", self.control_ports)):
            if span is not None and span.overlaps(*taken):
                raise ValueError(
                    f"{what} {span.low}-{span.high}: overlaps the servers' ports {taken[0]}-{taken[1]}"
                )
        t, c = self.transfer_ports, self.control_ports
        if t is not None and c is not None and t.overlaps(c.low, c.high):
            raise ValueError(f"transfer_ports {t.low}-{t.high} and control_ports {c.low}-{c.high} overlap")

    def _check_placement(self) -> None:
        for name, t in self.tasks.items():
            if t.adapter is not None and t.host is not None:
                raise ValueError(f"task {name!r}: an adapter runs on its pool's servers: place the pool")
        placed = {f"task {n!r}": t.host for n, t in self.tasks.items() if t.adapter is None}
        placed |= {f"prefill pool {n!r}": p.host for n, p in self.prefill_pools.items()}
        placed["decode"] = self.decode.host
        for what, placement in placed.items():
            if placement is not None and not self.hosts:
                raise ValueError(f"{what}: host: needs a hosts: map of names to addresses")
            if self.hosts and placement is None:
                raise ValueError(f"{what}: a cluster with hosts: places every server (host: NAME)")
            unknown = [h for h in names(placement) if h not in self.hosts]
            if unknown or placement == []:
                raise ValueError(f"{what}: host {unknown or placement} not in hosts: {sorted(self.hosts)}")
        if self.hosts and self.router.host not in self.hosts:
            raise ValueError(f"router.host {self.router.host!r}: name one of hosts: {sorted(self.hosts)}")
        for name in self.hosts:
            if not TASK_NAME.match(name):
                raise ValueError(f"host name {name!r}: use letters, digits, '_', '.', '-' only")

    @property
    def server_count(self) -> int:
        decode_pools = len(self.tasks) if self.mode == "conventional" else 1
        own_prefill = sum(t.replicas for t in self.tasks.values() if t.adapter is None)
        return (
            self.decode.replicas * decode_pools
            + own_prefill
            + sum(p.replicas for p in self.prefill_pools.values())
        )


def load(path: str | Path) -> ClusterConfig:
    data = Path(path).read_bytes()
    try:
        return msgspec.yaml.decode(data, type=ClusterConfig)
    except msgspec.ValidationError as err:
        raise ValueError(f"{path}: {err}") from err
