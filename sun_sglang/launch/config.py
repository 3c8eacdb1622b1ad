"""The cluster file (launch/*.yaml), parsed once into frozen structs with derived values."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from router.config import TASK_NAME, Timeouts
from sun_sglang.launch.roles import Backend


class TaskConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model_path: str  # a checkpoint folder, or the name of a model from sun_sglang.models
    replicas: int = 1


class DecodeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    replicas: int = 1


class RouterSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: list[str] = []  # if set, clients need "Authorization: Bearer KEY"
    admin_token: str | None = None  # enables the admin API (/admin/*)
    timeouts: Timeouts = Timeouts()  # connect, first token, between tokens, whole request
    health_interval_s: float = 5.0  # worker health probes (0: off)
    health_timeout_s: float = 5.0


class CpuPins(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """taskset CPU lists ("0", "2-3"), so that benchmark runs give each role the same cores."""

    prefill: str | None = None
    decode: str | None = None
    gateway: str | None = None


class ClusterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base: str  # the decode module: the frozen base checkpoint (folder or model name)
    tasks: dict[str, TaskConfig]
    # sun: one decode pool of decode.replicas base servers shared by every task.
    # conventional (baseline): decode.replicas decode servers per task, holding the task's model.
    mode: Literal["sun", "conventional"] = "sun"
    transfer_backend: Backend = "mooncake_tcp"
    decode: DecodeConfig = DecodeConfig()
    router: RouterSection = RouterSection()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: str = "auto"  # one explicit dtype for every server, resolved from the base if auto
    kv_cache_dtype: str = "auto"
    max_total_tokens: int | None = 4096
    first_port: int = 30000  # servers take ports from here; bootstrap ports from here + 500
    log_dir: str | None = None
    startup_timeout_s: float = 300.0
    prefill_args: list[str] = []  # passed through to every prefill server
    decode_args: list[str] = []  # passed through to every decode server
    prefill_env: dict[str, str] = {}  # added to every prefill server's environment
    decode_env: dict[str, str] = {}  # e.g. SGLang's test-only SGLANG_TEST_DISAGG_FAILURE_PROB
    cpus: CpuPins = CpuPins()

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("a cluster needs at least one task")
        for name, task in self.tasks.items():
            if not TASK_NAME.match(name):
                raise ValueError(f"task name {name!r}: use letters, digits, '_', '.', '-' only")
            if task.replicas < 1:
                raise ValueError(f"task {name!r}: replicas must be at least 1")
        if self.decode.replicas < 1:
            raise ValueError("decode.replicas must be at least 1")

    @property
    def server_count(self) -> int:
        decode_pools = len(self.tasks) if self.mode == "conventional" else 1
        return self.decode.replicas * decode_pools + sum(t.replicas for t in self.tasks.values())


def load(path: str | Path) -> ClusterConfig:
    data = Path(path).read_bytes()
    try:
        return msgspec.yaml.decode(data, type=ClusterConfig)
    except msgspec.ValidationError as err:
        raise ValueError(f"{path}: {err}") from err
