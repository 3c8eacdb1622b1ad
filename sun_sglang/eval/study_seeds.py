"""More seeds for the study's tasks where configurations differ: full fine-tuning and SUN trained
again with another seed (another train/test split, data order and initialisation of the run), then
full FT, naive composition and SUN measured on that seed's held-out split."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from sun_sglang import tasks
from sun_sglang.eval import evaluate_offline
from sun_sglang.eval.study_cache import cached, run_settings, train
from sun_sglang.train.loop import TrainConfig

SEED_CONFIGS = {"full FT": ("full", "full"), "naive": ("full", "base"), "SUN": ("sun", "base")}


def seed_task(task: str, base: str, work: Path, args: argparse.Namespace, seed: int) -> dict:
    folder = work / task / f"seed-{seed}"
    common = run_settings(task, base, args, seed)
    records = {m: train(TrainConfig(out=str(folder / m), mode=m, **common)) for m in ("full", "sun")}
    paths = {"base": base, "full": str(folder / "full"), "sun": str(folder / "sun")}
    _, test = tasks.split(tasks.load(task), seed, args.n_test)
    accuracy = {
        name: cached(
            folder / "accuracy.json",
            records,
            name,
            lambda p=paths[prefill], d=paths[decode]: evaluate_offline(p, d, test),
        )
        for name, (prefill, decode) in SEED_CONFIGS.items()
    }
    print(f"{task} seed {seed}: {accuracy}", flush=True)
    return {"task": task, "seed": seed, "accuracy": accuracy}


def _spread(values: list[float]) -> str:
    sd = statistics.stdev(values) * 100 if len(values) > 1 else 0.0
    return f"{statistics.fmean(values) * 100:.1f} ± {sd:.1f}"


def seeds_table(first: list[dict], more: list[dict], first_seed: int) -> str:
    """Per task with more than one seed: mean ± standard deviation over seeds of full FT, naive and
    SUN, and SUN's gap to full fine-tuning per seed."""
    lines = [
        "| task | seeds | full FT | naive | SUN | SUN - full FT, mean | SUN - full FT, per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in first:
        rows = [{"seed": first_seed, "accuracy": r["accuracy"]}, *(m for m in more if m["task"] == r["task"])]
        if len(rows) < 2:
            continue
        acc = {name: [row["accuracy"][name] for row in rows] for name in SEED_CONFIGS}
        gaps = [s - f for s, f in zip(acc["SUN"], acc["full FT"], strict=True)]
        cells = " | ".join(_spread(acc[name]) for name in SEED_CONFIGS)
        per_seed = ", ".join(f"{row['seed']}: {g * 100:+.1f}" for row, g in zip(rows, gaps, strict=True))
        seeds = ", ".join(str(row["seed"]) for row in rows)
        lines.append(f"| {r['task']} | {seeds} | {cells} | {_spread(gaps)} | {per_seed} |")
    return "\n".join(lines) + "\n"
