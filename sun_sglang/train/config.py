"""One training run's settings (a frozen msgspec struct: parsed once, from flags or a YAML file)."""

from __future__ import annotations

from typing import Literal

import msgspec

from sun_sglang import adapters

Mode = Literal["sun", "full", "lora"]


class TrainConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base: str  # the base checkpoint: the frozen decode module, and where training starts
    task: str  # a built-in task or a JSONL file
    out: str
    mode: Mode = "sun"
    steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_steps: int = 5
    weight_decay: float = 0.0
    seed: int = 0
    n_test: int = 200  # held out for evaluation; never trained on
    save_every: int = 25
    dtype: str = "float32"  # the trained weights' (and the optimizer state's) dtype
    # bf16-mixed: the layers compute in bfloat16 (FSDP2's param dtype; autocast in one process),
    # the weights, gradient reductions and optimizer state stay float32; the frozen decode module
    # is held in bfloat16 (no master copy needed). Needs dtype float32.
    precision: Literal["fp32", "bf16-mixed"] = "fp32"
    lora_rank: int = 16  # mode lora only
    lora_alpha: float = 32.0
    lora_targets: tuple[str, ...] = adapters.ALL_LINEAR
    # the frozen decode module, if not the base: QSUN trains against the quantized base (its
    # dequantized checkpoint, numerically what the low-bit decode servers compute)
    decode: str | None = None
    # sharded runs: the frozen decode module whole on every rank (no gradients to synchronise:
    # only memory), or sharded like the prefill module (every rank then runs every forward)
    decode_sharding: Literal["replicate", "shard"] = "replicate"
    # recompute each decoder layer's activations in the backward pass (prefill and decode modules):
    # memory for time, the same loss and gradients
    activation_checkpointing: bool = False
    report_to: tuple[str, ...] = ("jsonl",)  # jsonl, tensorboard (OUT/logs), none: from rank 0

    @property
    def decode_dtype(self) -> str:
        return "bfloat16" if self.precision == "bf16-mixed" and self.frozen_decode else self.dtype

    @property
    def decode_path(self) -> str:
        return self.decode or self.base

    @property
    def frozen_decode(self) -> bool:
        """The decode module is the untouched base (sun, lora), not the trained model (full)."""
        return self.mode != "full"

    def examples_per_step(self, world_size: int = 1) -> int:
        """The effective batch: per-rank batch x accumulation x ranks."""
        return self.batch_size * self.grad_accum * world_size
