"""The named models built by training or quantizing others: the demo's and the tests' SUN, LoRA-SUN
and QSUN modules. Registered into sun_sglang.models on import (the package imports this module),
so the model registry depends on nothing above it; training and quantization load only when one
of these is first built."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sun_sglang.models.registry import prepare, register


def _sun_trained(
    base: str, task: str, steps: int, mode: str = "sun", lr: float = 1e-4, decode: str | None = None
) -> Callable[[Path], None]:
    """A real SUN prefill module (mode lora: a LoRA adapter on the base, rank 16): `steps` of SUN
    training on a built-in task, seed 0; against `decode` (a QSUN model) if given, else the base."""

    def build(out: Path) -> None:
        from sun_sglang.quant import decode_module
        from sun_sglang.train.config import TrainConfig
        from sun_sglang.train.loop import train_and_export

        frozen = str(decode_module(prepare(decode), "cpu")) if decode else None
        config = TrainConfig(
            base=str(prepare(base)),
            task=task,
            out=str(out),
            steps=steps,
            save_every=10**9,
            mode=mode,
            lr=lr,
            decode=frozen,
        )
        train_and_export(config)  # its progress bar: this is the minute a first run waits

    return build


def _sun_trained_sharded(base: str, task: str, steps: int, ranks: int) -> Callable[[Path], None]:
    """A SUN prefill module trained as users train 8B ones: under torchrun, sharded over `ranks`
    processes (FSDP2, gloo on CPU), its export gathered on rank 0."""

    def build(out: Path) -> None:
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
        argv += ["-m", "sun_sglang.train", "--base", str(prepare(base)), "--task", task, "--out", str(out)]
        argv += ["--steps", str(steps), "--batch-size", "4", "--save-every", "1000000", "--report-to", "none"]
        threads = str(max(1, (os.cpu_count() or ranks) // ranks))
        subprocess.run(argv, check=True, env={**os.environ, "OMP_NUM_THREADS": threads})

    return build


def _quantized(base: str, bits: int) -> Callable[[Path], None]:
    """A QSUN decode module: weight-only GPTQ (group 64, 64 addition chats), packed/ + dequantized/."""

    def build(out: Path) -> None:
        from sun_sglang.quant.gptq import QuantConfig, quantize

        quantize(QuantConfig(base=str(prepare(base)), out=str(out), bits=bits, group_size=64, n_calib=64))

    return build


_TRAINED: dict[str, Callable[[Path], None]] = {
    # Trained task models for the demo and the serving tests (about a minute each to build).
    "smollm2-135m-sun-addition": _sun_trained("smollm2-135m", "bb_2digit_addition", steps=30),
    # LoRA prefill modules (peft adapter folders) for multi-LoRA prefill pools.
    "smollm2-135m-sun-addition-lora": _sun_trained(
        "smollm2-135m", "bb_2digit_addition", steps=30, mode="lora", lr=1e-3
    ),
    "smollm2-135m-sun-sports-lora": _sun_trained(
        "smollm2-135m", "bb_sports_understanding", steps=30, mode="lora", lr=1e-3
    ),
    # QSUN: the base quantized to 4 bits (about two minutes), and a prefill module trained against it.
    "smollm2-135m-w4": _quantized("smollm2-135m", bits=4),
    "smollm2-135m-qsun-addition": _sun_trained(
        "smollm2-135m", "bb_2digit_addition", steps=30, decode="smollm2-135m-w4"
    ),
    # trained sharded over two processes: its export is served, and checked, like any other
    "smollm2-135m-sun-sharded": _sun_trained_sharded("smollm2-135m", "bb_2digit_addition", steps=10, ranks=2),
}

for _name, _build in _TRAINED.items():
    register(_name, _build)
