"""Memory per process of SUN training, predicted from parameter counts and measured on CPU runs.

    python -m sun_sglang.bench.train_memory [--base smollm2-135m] [--steps 3]

Runs the training CLI (one process, then torchrun with two: the decode module replicated or
sharded, activation checkpointing off and on) at one global batch, and prints each run's peak RSS
per rank beside the model's state per rank (`state_gib`). The same function gives the 8B figures
of docs/TRAINING.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sun_sglang.models import prepare

GIB = 2**30


@dataclass(frozen=True)
class Setup:
    params: float  # the model's parameters
    mode: str = "sun"  # sun, lora, full
    ranks: int = 1
    decode_sharding: str = "replicate"
    weight_bytes: int = 4  # the trained weights' (float32: the master copy under bf16-mixed)
    decode_bytes: int = 4  # the frozen decode module's (2 under bf16-mixed)
    lora_params: float = 0.0  # mode lora: the adapter's


def state_gib(s: Setup) -> dict[str, float]:
    """Bytes per rank of what lives through a run: weights, gradients and AdamW's two moments of
    the trained parameters (sharded: / ranks); the frozen parameters (lora: the base under the
    adapter; sun, lora: the decode module, replicated or sharded). Activations come on top."""
    trained = s.lora_params if s.mode == "lora" else s.params
    train_state = trained * (s.weight_bytes + 4 + 8) / s.ranks  # weights, fp32 grads, fp32 m and v
    frozen_base = s.params * s.weight_bytes / s.ranks if s.mode == "lora" else 0.0
    decode = 0.0
    if s.mode != "full":
        decode = s.params * s.decode_bytes / (s.ranks if s.decode_sharding == "shard" else 1)
    total = train_state + frozen_base + decode
    return {"train_state": train_state / GIB, "frozen": (frozen_base + decode) / GIB, "total": total / GIB}


def _run(base: Path, ranks: int, batch: int, steps: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        launcher = [sys.executable]
        if ranks > 1:
            launcher = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc-per-node={ranks}",
            ]
        argv = [*launcher, "-m", "sun_sglang.train", "--base", str(base), "--task", "bb_2digit_addition"]
        argv += [
            "--out",
            out,
            "--steps",
            str(steps),
            "--batch-size",
            str(batch),
            "--report-to",
            "none",
            *extra,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // ranks))}
        subprocess.run(argv, check=True, capture_output=True, env=env)
        return json.loads((Path(out) / "sun_train.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.bench.train_memory")
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--global-batch", type=int, default=8)
    args = ap.parse_args()
    base = prepare(args.base)
    from transformers import AutoConfig, AutoModelForCausalLM

    with __import__("torch").device("meta"):
        params = sum(
            p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base)).parameters()
        )
    runs = [
        ("1 process", 1, "replicate", []),
        ("2 ranks, decode replicated", 2, "replicate", []),
        ("2 ranks, decode sharded", 2, "shard", ["--decode-sharding", "shard"]),
        (
            "2 ranks, sharded + checkpointing",
            2,
            "shard",
            ["--decode-sharding", "shard", "--activation-checkpointing"],
        ),
    ]
    print(
        f"{args.base}: {params / 1e6:.1f}M parameters, mode sun, float32, global batch {args.global_batch}, "
        f"{args.steps} steps, {os.cpu_count()} CPU cores"
    )
    heads = ("state/rank", "training peak/rank", "peak - state", "loading peak", "s/step")
    print(f"{'run':36} {heads[0]:>11} {heads[1]:>19} {heads[2]:>13} {heads[3]:>13} {heads[4]:>7}")
    for name, ranks, sharding, extra in runs:
        record = _run(base, ranks, args.global_batch // ranks, args.steps, extra)
        state = state_gib(Setup(params, ranks=ranks, decode_sharding=sharding))["total"]
        peak = max(record["peak_rss_gib_per_rank"])
        loading = max(record["load_peak_rss_gib_per_rank"])
        step_s = record["train_seconds"] / args.steps
        print(f"{name:36} {state:11.2f} {peak:19.2f} {peak - state:13.2f} {loading:13.2f} {step_s:7.2f}")
    print("GiB per rank; the training peak is VmHWM reset after loading (loading: every rank holds the")
    print("whole checkpoint before sharding); peak - state: activations, FSDP2's gathered units, the process")


if __name__ == "__main__":
    main()
