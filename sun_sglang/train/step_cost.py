"""One SUN (and LoRA-SUN) training step beside one full fine-tuning step at the same batch:
median step time and peak memory, each mode in its own process (peak RSS is per process).

    python -m sun_sglang.train.step_cost [--base smollm2-135m] [--batch-size 8] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from sun_sglang.models import prepare
from sun_sglang.train.config import TrainConfig
from sun_sglang.train.loop import Trainer
from sun_sglang.train.report import vm_gib


def _measure(mode: str, base: str, batch_size: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            base=base, task="bb_2digit_addition", out=out, mode=mode, steps=steps, batch_size=batch_size
        )
        trainer = Trainer(config)
        after_load = vm_gib("VmRSS")
        times, tokens = [], 0
        for _ in range(steps):
            t0 = time.perf_counter()
            _, n = trainer.train_step()
            times.append(time.perf_counter() - t0)
            tokens += n
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {
        "mode": mode,
        "step_s": statistics.median(times[1:]),  # the first step warms allocators up
        "tokens_per_s": tokens / sum(times),
        "peak_rss_gib": vm_gib("VmHWM"),
        "rss_after_load_gib": after_load,
        "trainable_params_m": trainable / 1e6,
    }


def measure_both(base_name: str, batch_size: int, steps: int) -> dict[str, dict]:
    """Full fine-tuning and SUN, each in a fresh process (peak RSS is per process)."""
    rows = {}
    for mode in ("full", "sun", "lora"):
        argv = [sys.executable, "-m", "sun_sglang.train.step_cost", "--child", mode]
        argv += ["--base", base_name, "--batch-size", str(batch_size), "--steps", str(steps)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        rows[mode] = json.loads(out.strip().splitlines()[-1])
    return rows


def report(rows: dict[str, dict], base_name: str, batch_size: int, steps: int) -> str:
    lines = [
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
        f" ({torch.get_num_threads()} threads), {base_name} float32, batch {batch_size},"
        f" bb_2digit_addition chats; median of {steps - 1} steps after one warm-up",
        "",
        "| mode | step (s) | tokens/s | peak RSS (GiB) | RSS after loading (GiB) | trainable params (M) |",
        "|---|---|---|---|---|---|",
    ]
    for mode, r in rows.items():
        lines.append(
            f"| {mode} | {r['step_s']:.2f} | {r['tokens_per_s']:.0f} | {r['peak_rss_gib']:.2f} |"
            f" {r['rss_after_load_gib']:.2f} | {r['trainable_params_m']:.1f} |"
        )
    sun, full = rows["sun"], rows["full"]
    lines += [
        "",
        f"SUN / full fine-tuning: step time {sun['step_s'] / full['step_s']:.2f}x,"
        f" peak memory {sun['peak_rss_gib'] / full['peak_rss_gib']:.2f}x.",
    ]
    if "lora" in rows:
        lora = rows["lora"]
        lines[-1] += (
            f" LoRA-SUN (rank 16, every linear layer) / full fine-tuning: step time"
            f" {lora['step_s'] / full['step_s']:.2f}x,"
            f" peak memory {lora['peak_rss_gib'] / full['peak_rss_gib']:.2f}x."
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--child", choices=["sun", "full", "lora"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child, str(prepare(args.base)), args.batch_size, args.steps)))
        return
    prepare(args.base)
    rows = measure_both(args.base, args.batch_size, args.steps)
    print(report(rows, args.base, args.batch_size, args.steps))


if __name__ == "__main__":
    main()
