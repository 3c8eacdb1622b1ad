"""Step-time models for the simulator: a roofline over a table of GPUs and model shapes, or a
profile measured on a real server. Both answer the same two questions: how long one decode step
of a batch takes, and how long one prefill of some prompts takes.

Roofline: a step reads every weight once plus the KV of every token in the batch's context, and
does 2 FLOPs per weight per token plus the attention FLOPs; its time is the larger of bytes /
memory bandwidth and FLOPs / peak compute, plus a fixed per-step overhead (scheduling, launches).
That is a lower bound on a real engine's step: it assumes the peak bandwidth and FLOP rate.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Protocol

import msgspec


class Gpu(msgspec.Struct, frozen=True):
    name: str
    mem_bw_gb_s: float  # HBM bandwidth, GB/s (10^9 bytes)
    bf16_tflops: float  # dense peak
    memory_gib: float


class ModelShape(msgspec.Struct, frozen=True):
    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool = False

    @property
    def params(self) -> int:
        attn = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        mlp = 3 * self.hidden * self.intermediate
        embed = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * (attn + mlp + 2 * self.hidden) + embed

    @property
    def matmul_params(self) -> int:
        """Weights multiplied per token (the input embedding is a lookup)."""
        return self.params - self.vocab * self.hidden * (0 if self.tied_embeddings else 1)

    def kv_bytes_per_token(self, kv_bytes: float = 2.0) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_bytes

    def attention_flops(self, query_tokens: int, context_tokens: int) -> float:
        """QK^T and PV: 2 matmuls x 2 FLOPs x heads x head_dim per (query, key) pair."""
        return 4.0 * self.layers * self.heads * self.head_dim * query_tokens * context_tokens


# Datasheet figures (SXM parts; dense bf16, no sparsity).
GPUS = {
    g.name: g
    for g in (
        Gpu("A100", mem_bw_gb_s=2039, bf16_tflops=312, memory_gib=80),
        Gpu("H100", mem_bw_gb_s=3350, bf16_tflops=989, memory_gib=80),
        Gpu("H200", mem_bw_gb_s=4800, bf16_tflops=989, memory_gib=141),
    )
}

# From the models' config.json files.
MODELS = {
    m.name: m
    for m in (
        ModelShape("Llama-3.1-8B", 32, 4096, 32, 8, 128, 14336, 128256),
        ModelShape("Qwen3-8B", 36, 4096, 32, 8, 128, 12288, 151936),
        ModelShape("SmolLM2-135M", 30, 576, 9, 3, 64, 1536, 49152, tied_embeddings=True),
        ModelShape("SmolLM2-360M", 32, 960, 15, 5, 64, 2560, 49152, tied_embeddings=True),
    )
}


class StepCost(Protocol):
    def decode_step_s(self, batch: int, context_tokens: int) -> float: ...

    def prefill_s(self, prompt_lens: Sequence[int]) -> float: ...


class Roofline(msgspec.Struct, frozen=True):
    gpu: Gpu
    model: ModelShape
    weight_bytes: float = 2.0  # per parameter: 2 for bf16, 0.5(+scales) for 4-bit
    kv_bytes: float = 2.0  # per KV element
    decode_overhead_s: float = 0.0015
    prefill_overhead_s: float = 0.003

    def _time(self, bytes_read: float, flops: float) -> float:
        return max(bytes_read / (self.gpu.mem_bw_gb_s * 1e9), flops / (self.gpu.bf16_tflops * 1e12))

    def decode_step_s(self, batch: int, context_tokens: int) -> float:
        m = self.model
        bytes_read = m.params * self.weight_bytes + context_tokens * m.kv_bytes_per_token(self.kv_bytes)
        flops = 2.0 * m.matmul_params * batch + m.attention_flops(1, context_tokens)
        return self._time(bytes_read, flops) + self.decode_overhead_s

    def prefill_s(self, prompt_lens: Sequence[int]) -> float:
        m = self.model
        tokens = sum(prompt_lens)
        flops = 2.0 * m.matmul_params * tokens + sum(m.attention_flops(n, n) / 2 for n in prompt_lens)
        bytes_read = m.params * self.weight_bytes + tokens * m.kv_bytes_per_token(self.kv_bytes)
        return self._time(bytes_read, flops) + self.prefill_overhead_s

    def kv_capacity_tokens(self, reserve_gib: float = 4.0) -> int:
        free = self.gpu.memory_gib * 2**30 - self.model.params * self.weight_bytes - reserve_gib * 2**30
        return max(0, int(free / self.model.kv_bytes_per_token(self.kv_bytes)))


def _interp(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear through the points; linear extrapolation past either end."""
    if len(xs) == 1:
        return ys[0]
    i = min(max(bisect.bisect_left(xs, x), 1), len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return max(0.0, y0 + (y1 - y0) * (x - x0) / (x1 - x0))


class Profile(msgspec.Struct, frozen=True):
    """Step times measured on a real server: decode step by batch size (at the context lengths of
    the measurement), prefill by prompt tokens of one request. Calibrates against a real cluster."""

    decode_batches: list[float]
    decode_seconds: list[float]
    prefill_lens: list[float]
    prefill_seconds: list[float]
    source: str = ""

    def __post_init__(self) -> None:
        if not self.decode_batches or len(self.decode_batches) != len(self.decode_seconds):
            raise ValueError("decode_batches and decode_seconds: same non-zero length")
        if not self.prefill_lens or len(self.prefill_lens) != len(self.prefill_seconds):
            raise ValueError("prefill_lens and prefill_seconds: same non-zero length")

    def decode_step_s(self, batch: int, context_tokens: int) -> float:
        return _interp(self.decode_batches, self.decode_seconds, batch)

    def prefill_s(self, prompt_lens: Sequence[int]) -> float:
        return sum(_interp(self.prefill_lens, self.prefill_seconds, n) for n in prompt_lens)
