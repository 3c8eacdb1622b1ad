"""What the simulator is given: the requests, and the shape of the cluster they run on (pools,
capacities, the costs outside the servers' steps, which workers share a core)."""

from __future__ import annotations

from typing import Literal

import msgspec

from router.pools import DecodePolicy


class SimRequest(msgspec.Struct, frozen=True):
    index: int
    task: str
    at_s: float  # arrival (open loop); ignored in a closed loop
    prompt_tokens: int
    output_tokens: int


class ClusterShape(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tasks: list[str]
    # sun: one shared decode pool of the base; conventional: a decode pool per task; multi_lora: one
    # shared pool whose steps run each request's adapter (the decode cost is a sim.lora.LoraDecodeCost)
    mode: Literal["sun", "conventional", "multi_lora"] = "sun"
    prefill_per_task: int = 1
    prefill_workers: dict[str, int] = {}  # per-task counts, overriding prefill_per_task
    shared_prefill_workers: int = 0  # > 0: one prefill pool for every task (adapters on multi-LoRA servers)
    decode_workers: int = 1  # sun, multi_lora: the shared pool; conventional: per task
    decode_policy: DecodePolicy = "least_load"
    kv_capacity_tokens: int = 4096  # per decode worker
    max_running: int = 256  # per decode worker (SGLang's max_running_requests)
    prefill_budget_tokens: int = 8192  # tokens per prefill batch (chunked-prefill size)
    transfer_s: float = 0.0  # fixed cost of moving one request's KV ...
    transfer_s_per_token: float = 0.0  # ... plus this per prompt token
    # First-token time outside the queues and steps (sim.ttft calibrates these on a CPU run):
    # SGLang's PD admission: the decode server reserves a request's KV between its steps, FIFO,
    # while prompt + reserved KV + reserved_decode_tokens per reserved request fit; only then may the
    # prefill start. Off: the KV is reserved when it arrives (prompt + output within capacity).
    prealloc_between_steps: bool = False
    reserved_decode_tokens: int = 0  # SGLang's num_reserved_decode_tokens (512 by default)
    handshake_s: float = 0.0  # decode's pre-allocation reaching the prefill server (the bootstrap)
    first_token_s: float = 0.0  # gateway, HTTP, tokenizer and detokenizer: added to every token's time
    prefill_cores: int | None = None  # None: each worker its own device; else workers share N cores
    decode_cores: int | None = None
    decode_core_overhead: float = 1.0  # decode servers sharing a core: slowdown beyond 1/n
    decode_idle_spin: bool = False  # decode servers sharing a core take their share even when idle

    @property
    def decode_worker_count(self) -> int:
        return self.decode_workers * (len(self.tasks) if self.mode == "conventional" else 1)

    def prefill_count(self, task: str) -> int:
        return self.prefill_workers.get(task, self.prefill_per_task)

    @property
    def prefill_worker_count(self) -> int:
        return self.shared_prefill_workers or sum(self.prefill_count(t) for t in self.tasks)

    @property
    def worker_count(self) -> int:
        return self.decode_worker_count + self.prefill_worker_count
