"""More runs of full fine-tuning and SUN beside the study's first: other seeds (another train/test
split and data order) for the tasks where configurations differ, and longer training for the
tasks that stay at their label prior; full FT, naive composition and SUN measured on each run's
held-out split."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from sun_sglang import tasks
from sun_sglang.eval import evaluate_offline
from sun_sglang.eval.study_cache import cached, run_settings, train
from sun_sglang.train.config import TrainConfig

SEED_CONFIGS = {"full FT": ("full", "full"), "naive": ("full", "base"), "SUN": ("sun", "base")}


def seed_task(
    task: str, base: str, work: Path, args: argparse.Namespace, seed: int, steps: int | None = None
) -> dict:
    longer = steps is not None and steps != args.steps
    folder = work / task / (f"steps-{steps}-seed-{seed}" if longer else f"seed-{seed}")
    common = run_settings(task, base, args, seed)
    if longer:
        common.update(steps=steps, save_every=max(10, steps // 4))  # type: ignore[operator]
    records = {m: train(TrainConfig(out=str(folder / m), mode=m, **common)) for m in ("full", "sun")}
    paths = {"base": base, "full": str(folder / "full"), "sun": str(folder / "sun")}
    _, test = tasks.train_test(task, seed, args.n_test)
    accuracy = {
        name: cached(
            folder / "accuracy.json",
            records,
            name,
            lambda p=paths[prefill], d=paths[decode]: evaluate_offline(p, d, test),
        )
        for name, (prefill, decode) in SEED_CONFIGS.items()
    }
    print(f"{task} seed {seed}, {common['steps']} steps: {accuracy}", flush=True)
    seconds = {m: r.get("train_seconds") for m, r in records.items()}
    return {
        "task": task,
        "seed": seed,
        "steps": common["steps"],
        "accuracy": accuracy,
        "train_seconds": seconds,
    }


def _spread(values: list[float], sign: str = "") -> str:
    sd = statistics.stdev(values) * 100 if len(values) > 1 else 0.0
    return f"{statistics.fmean(values) * 100:{sign}.1f} ± {sd:.1f}"


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
        lines.append(f"| {r['task']} | {seeds} | {cells} | {_spread(gaps, '+')} | {per_seed} |")
    return "\n".join(lines) + "\n"


def longer_table(first: list[dict], longer: list[dict], first_steps: int) -> str:
    """Per task trained longer: full FT, naive and SUN after the study's steps and after more."""
    lines = [
        "| task | steps | full FT | naive | SUN | SUN - full FT | train time full / SUN |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in longer:
        short = next(f for f in first if f["task"] == r["task"])
        for steps, acc, secs in (
            (first_steps, short["accuracy"], short["train_seconds"]),
            (r["steps"], r["accuracy"], r["train_seconds"]),
        ):
            cells = " | ".join(f"{acc[name] * 100:.1f}" for name in SEED_CONFIGS)
            gap = (acc["SUN"] - acc["full FT"]) * 100
            times = f"{secs['full']:.0f} s / {secs['sun']:.0f} s"
            lines.append(f"| {r['task']} | {steps} | {cells} | {gap:+.1f} | {times} |")
    return "\n".join(lines) + "\n"
