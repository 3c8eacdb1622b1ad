"""A decode step with LoRA adapters in the batch (multi-LoRA serving: S-LoRA / Punica batches that
mix adapters, SGLang's `--enable-lora`), for the simulator's multi-LoRA baseline. SUN's decode
servers run the plain base and pay none of it.

    step(batch, context, adapters) = base step x (1 + fixed_fraction)
        + max((adapters - 1) x layers x projections x per_adapter_s,   (the kernels)
              adapters x adapter weight bytes / memory bandwidth)        (the adapters' weights)

Sources (figures as published; GPU and shapes differ from the simulated ones, so this is an
estimate with its sources, not a measurement):
- fixed_fraction 0.084: Punica (arXiv 2310.18547) Fig. 11, Llama-2-7B on one A100, rank 16, every
  request on the same adapter: 1,044 tok/s against vLLM without LoRA at 1,140 tok/s.
- per_adapter_s 1.25 us per LoRA'd projection: Punica Sec. 7.1 / Fig. 8, the SGMV operator (rank 16,
  4,096 out) grows from 37 to 116 us as the batch goes from 1 to 64 distinct adapters, and stays
  at 37-40 us with one; (116 - 37) / 63 per further adapter.
- projections 7 (q, k, v, o, gate, up, down): Punica applies LoRA to every dense projection.
- max_adapters 8: SGLang 0.5.23's --max-loras-per-batch default; its PD decode pre-allocates a
  request only if its adapter fits the running set (`can_schedule_lora_req`).
A cross-check: at 8 distinct adapters on Llama-3.1-8B on an A100 (a roofline step of 12-13 ms at
batch 32-64) this adds 23-24%, against S-LoRA's (arXiv 2311.03285) raw data for Llama-7B on an
A100: 7.74 req/s with 1-100 adapters against 9.64 with none (offered 10 req/s: at least 20% lower)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from sun_sglang.sim.costs import Roofline


class LoraDecodeCost(msgspec.Struct, frozen=True):
    base: Roofline
    fixed_fraction: float = 0.084
    per_adapter_s: float = 1.25e-6
    projections: int = 7
    max_adapters: int = 8
    rank: int = 16

    def adapter_bytes(self) -> float:
        """One adapter's A and B matrices (bf16) on q, k, v, o, gate, up and down of every layer."""
        m = self.base.model
        q, kv = m.heads * m.head_dim, m.kv_heads * m.head_dim
        ins_outs = (m.hidden + q) * 2 + (m.hidden + kv) * 2 + (m.hidden + m.intermediate) * 3
        return 2.0 * self.rank * ins_outs * m.layers

    def lora_s(self, adapters: int) -> float:
        """What the adapters add beyond the fixed fraction, for that many distinct ones in a batch:
        the measured kernel growth, or reading their weights, whichever is longer."""
        kernels = max(0, adapters - 1) * self.base.model.layers * self.projections * self.per_adapter_s
        weights = adapters * self.adapter_bytes() / (self.base.gpu.mem_bw_gb_s * 1e9)
        return max(kernels, weights) if adapters > 1 else 0.0

    def decode_step_s(self, batch: int, context_tokens: int, adapters: int = 1) -> float:
        if adapters > self.max_adapters:
            raise ValueError(f"{adapters} adapters in one batch: at most {self.max_adapters}")
        base = self.base.decode_step_s(batch, context_tokens)
        return base if adapters == 0 else base * (1 + self.fixed_fraction) + self.lora_s(adapters)

    def prefill_s(self, prompt_lens: Sequence[int]) -> float:
        """Compute-bound: the adapters' matmuls, about 2 x rank / hidden of a projection's FLOPs."""
        return self.base.prefill_s(prompt_lens) * (1 + 2 * self.rank / self.base.model.hidden)
