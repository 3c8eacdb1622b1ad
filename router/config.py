"""The gateway's configuration: parsed once, at start-up, from one JSON or YAML file."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from router.policy import CacheAwareConfig
from router.pools import DecodePolicy, PrefillPolicy

TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_key(what: str, key: str) -> None:
    """A key that goes into HTTP headers and argv: printable ASCII, no spaces, no leading '-'."""
    if not re.fullmatch(r"[!-~]{8,}", key) or key.startswith("-"):
        raise ValueError(f"{what}: 8 or more printable ASCII characters, no spaces, not starting with '-'")


class PrefillWorker(msgspec.Struct, frozen=True):
    url: str  # http://host:port of an SGLang server in --disaggregation-mode prefill
    bootstrap_port: int
    cache_tokens: int | None = None  # its KV cache in tokens (SGLang's max_total_num_tokens), if known

    @property
    def bootstrap_host(self) -> str:
        return self.url.split("://", 1)[-1].rsplit(":", 1)[0]


class TaskRoute(msgspec.Struct, frozen=True):
    model_path: str  # the prefill module (adapter tasks: the base): the task's tokenizer and template
    prefill: list[PrefillWorker] = []  # the task's own prefill servers, or:
    pool: str | None = None  # a shared multi-LoRA prefill pool (GatewayConfig.prefill_pools) ...
    adapter: str | None = None  # ... and the adapter's name there; sent on the prefill leg only
    # (on both legs where GatewayConfig.decode_adapters)
    decode: list[str] | None = None  # the task's own decode pool (conventional mode); else shared
    tool_call_parser: str | None = None  # SGLang's parser of this model's tool calls (e.g. qwen25)
    reasoning_parser: str | None = None  # SGLang's parser of its thinking (e.g. qwen3, deepseek-r1)


class Timeouts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    connect_s: float = 5.0  # TCP connect to a worker
    first_token_s: float = 120.0  # streamed: request sent -> first token
    between_tokens_s: float = 30.0  # streamed: longest gap between tokens
    request_s: float = 600.0  # any request, whole; a JSON answer also gets
    # first_token_s + max_new_tokens * between_tokens_s at most

    def answer_s(self, max_new_tokens: int) -> float:
        return min(self.request_s, self.first_token_s + max_new_tokens * self.between_tokens_s)


class GatewayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tasks: dict[str, TaskRoute]
    decode: list[str]  # the shared decode pool: URLs of decode servers (empty if every task has its own)
    # prefill pools that serve many tasks as LoRA adapters on the base (SGLang multi-LoRA)
    prefill_pools: dict[str, list[PrefillWorker]] = {}
    host: str = "127.0.0.1"
    port: int = 8000
    timeouts: Timeouts = Timeouts()
    prefill_policy: PrefillPolicy = "cache_aware"
    prefill_balance: CacheAwareConfig = CacheAwareConfig()  # when a prefix or session holder keeps one
    decode_policy: DecodePolicy = "least_load"
    # The baseline multi-LoRA PD (launch mode multi_lora): the decode servers hold the adapters too,
    # and each request names its adapter on the decode leg as well. SUN's decode servers hold none.
    decode_adapters: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    max_prompt_tokens: int | None = None  # longer prompts get a 400 before any server sees them
    max_concurrency: int = 256  # requests in flight; past it a 429
    max_n: int = 8  # choices per request (each is its own PD request)
    api_keys: list[str] = []  # if set, /v1/* and /generate need "Authorization: Bearer KEY"
    admin_token: str | None = None  # enables /admin/* (join, drain, remove workers)
    server_api_key: str | None = None  # the servers' SGLang --api-key: sent on every call to them
    # hosts that workers may be registered on (no requests to arbitrary addresses via the admin API)
    admin_allowed_hosts: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "localhost", "::1"])
    retries: int = 1  # another pair for a request whose server refused the connection
    health_interval_s: float = 5.0  # 0 turns the periodic worker health checks off
    health_timeout_s: float = 5.0
    load_interval_s: float = 1.0  # poll decode servers' /v1/loads (0: only the gateway's own count)
    shutdown_timeout_s: float = 30.0  # on SIGTERM: requests in flight get this long to finish
    access_log: str | None = "-"  # one JSON line per request: "-" stderr, a file path, or null (off)
    access_log_flush_s: float = 0.2
    metrics_task_histograms: bool = True  # false: one latency/TTFT/TPOT histogram set for all tasks
    supervision_file: str | None = None  # the launcher's supervisor state (shown in /admin/workers, /metrics)

    def __post_init__(self) -> None:
        if self.server_api_key is not None:
            check_key("server_api_key", self.server_api_key)
        for name, task in self.tasks.items():
            if not TASK_NAME.match(name):
                raise ValueError(f"task name {name!r}: use letters, digits, '_', '.', '-' only")
            if task.pool is not None:
                if task.prefill or task.adapter is None:
                    raise ValueError(f"task {name!r}: a pool task names its adapter and no own servers")
                if task.pool not in self.prefill_pools:
                    raise ValueError(f"task {name!r}: no prefill pool {task.pool!r}")
            elif task.adapter is not None:
                raise ValueError(f"task {name!r}: an adapter is served by a prefill pool (pool:)")
            elif not task.prefill:
                raise ValueError(f"task {name!r} has no prefill worker")
            if not (task.decode or self.decode):
                raise ValueError(f"task {name!r} has no decode worker (no own pool, shared pool empty)")


def load(path: str | Path) -> GatewayConfig:
    data = Path(path).read_bytes()
    if str(path).endswith((".yaml", ".yml")):
        return msgspec.yaml.decode(data, type=GatewayConfig)
    return msgspec.json.decode(data, type=GatewayConfig)


class GatewaySecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What `--secrets FILE` (JSON) overrides in the config: kept out of a config that many can read
    (a Kubernetes ConfigMap). A field left out keeps the config's value."""

    api_keys: list[str] | msgspec.UnsetType = msgspec.UNSET
    admin_token: str | None | msgspec.UnsetType = msgspec.UNSET
    server_api_key: str | None | msgspec.UnsetType = msgspec.UNSET


def load_secrets(path: str | Path) -> GatewaySecrets:
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=GatewaySecrets)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ValueError(f"{path}: {err}") from err


def with_secrets(config: GatewayConfig, secrets: GatewaySecrets) -> GatewayConfig:
    given = {f: v for f in secrets.__struct_fields__ if (v := getattr(secrets, f)) is not msgspec.UNSET}
    return msgspec.structs.replace(config, **given)
