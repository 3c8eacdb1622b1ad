"""The benchmarks study's section of docs/ACCURACY.md: the paper's table shape (a row per
benchmark, a column per configuration) with standard errors, the gaps as paired differences on
the same test examples, and the paper's own claims beside them. The section sits between its
markers; the rest of the page (the SmolLM2 study, the hand-written reading) is kept."""

from __future__ import annotations

import argparse
import math
import platform
from pathlib import Path

import torch

BEGIN = "<!-- benchmarks study: begin (written by python -m sun_sglang.eval.study_benchmarks) -->"
END = "<!-- benchmarks study: end -->"
NAMES = {"bfcl": "BFCL (AST, 4 categories)", "gsm8k": "GSM8K", "humaneval": "HumanEval (pass@1)"}
GAPS = (("SUN", "full FT"), ("naive", "full FT"), ("LoRA-SUN", "full FT"))  # and each QSUN - SUN


PAPER = (
    "The paper's own figures (arXiv 2603.02599; Llama-3.1-8B and Qwen3-8B-Base): its abstract"
    " reports SUN's accuracy as comparable to full fine-tuning on these three kinds of task, and"
    " QSUN as comparable to SUN (a 1-3% cost, by a secondary summary). Its per-benchmark table"
    " could not be read here: the copy this project can reach holds only the abstract and the"
    " introduction, so no number of the paper's is quoted beside these (a figure would be"
    " invented). At 0.5B on 2 CPU cores the test sets are subsampled (n and the standard error"
    " in each cell)."
)


def pooled(results: list[dict], task: str, name: str) -> list[bool] | None:
    """The configuration's per-example results over every seed run, or None if one lacks it."""
    runs = [r["correct"].get(name) for r in results if r["task"] == task]
    return None if not runs or any(x is None for x in runs) else [x for run in runs for x in run]


def accuracy_cell(correct: list[bool] | None) -> str:
    if correct is None:
        return "not run"
    p = sum(correct) / len(correct)
    return f"{100 * p:.1f} ± {100 * math.sqrt(p * (1 - p) / len(correct)):.1f}"


def gap_cell(a: list[bool] | None, b: list[bool] | None) -> str:
    """a - b on the same examples, with the paired standard error (sd of the differences / sqrt n)."""
    if a is None or b is None:
        return "not run"
    d = [int(x) - int(y) for x, y in zip(a, b, strict=True)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / max(1, len(d) - 1))
    return f"{100 * mean:+.1f} ± {100 * sd / math.sqrt(len(d)):.1f}"


def gaps(names: list[str]) -> list[tuple[str, str]]:
    """The gap columns: SUN, naive and LoRA-SUN against full fine-tuning, each QSUN scheme run
    against SUN."""
    return [*GAPS, *((n, "SUN") for n in names if n.startswith("QSUN"))]


def table(results: list[dict], names: list[str]) -> str:
    pairs = gaps(names)
    head = "| benchmark | n test (seeds) | " + " | ".join(names) + " | "
    head += " | ".join(f"{a} - {b}" for a, b in pairs) + " |"
    lines = [head, "|" + "---|" * (2 + len(names) + len(pairs))]
    for task in dict.fromkeys(r["task"] for r in results):
        runs = [r for r in results if r["task"] == task]
        seeds = ", ".join(str(r["seed"]) for r in runs)
        cells = [accuracy_cell(pooled(results, task, n)) for n in names]
        gap_cells = [gap_cell(pooled(results, task, a), pooled(results, task, b)) for a, b in pairs]
        n = sum(r["n_test"] for r in runs)
        lines.append(f"| {NAMES.get(task, task)} | {n} ({seeds}) | " + " | ".join(cells + gap_cells) + " |")
    return "\n".join(lines) + "\n"


def per_seed(results: list[dict]) -> str:
    head = "| benchmark | seed | n train / test | SUN - full FT | naive - full FT"
    lines = [head + " | train time full / SUN / LoRA |"]
    lines.append("|---|---|---|---|---|---|")
    for r in results:
        c, t = r["correct"], r["train_seconds"]
        times = " / ".join(f"{t[m]:.0f} s" if t.get(m) else "-" for m in ("full", "sun", "lora"))
        lines.append(
            f"| {NAMES.get(r['task'], r['task'])} | {r['seed']} | {r['n_train']} / {r['n_test']}"
            f" | {gap_cell(c.get('SUN'), c.get('full FT'))} | {gap_cell(c.get('naive'), c.get('full FT'))}"
            f" | {times} |"
        )
    return "\n".join(lines) + "\n"


def section(results: list[dict], args: argparse.Namespace, names: list[str]) -> str:
    """The section for `results`, a column per configuration in `names` ("not run" where none)."""
    conditions = (
        f"{args.base}, {args.steps} steps of {args.batch_size * args.grad_accum} examples (batch"
        f" {args.batch_size} x {args.grad_accum} accumulated; activation checkpointing), AdamW lr"
        f" {args.lr} (LoRA-SUN:"
        f" lr {args.lora_lr}, rank {args.lora_rank}), warm-up 5 steps then linear decay, training"
        f" {args.precision} (float32 weights and optimizer state); answers greedy through the SUN"
        f" reference in {args.eval_dtype}; QSUN decoders {args.qsun or 'none'} (GPTQ, calibrated on"
        f" the training splits of {args.calib_tasks}); {platform.machine()}, {torch.get_num_threads()}"
        " torch threads. Cells: % right ± its standard error over the seeds' pooled test examples;"
        " gaps: paired differences on the same examples ± their standard error."
    )
    rerun = (
        f"python -m sun_sglang.eval.study_benchmarks --tasks {args.tasks} --seeds {args.seeds}"
        f" --steps {args.steps} --qsun '{args.qsun}' --doc docs/ACCURACY.md"
    )
    parts = [
        BEGIN,
        "## The paper's benchmarks at 0.5B: BFCL, GSM8K, HumanEval",
        "",
        f"Written by `{rerun}`. Every answer is kept in `docs/accuracy/{args.base}/` with the"
        " settings it was made with (a rerun answers only what is missing; a stopped run continues)."
        " The tasks and their scorers: `sun_sglang/tasks/` (bfcl.py, gsm8k.py, humaneval.py).",
        "",
        table(results, names),
        conditions,
        "",
        PAPER,
        "",
        "Per seed:",
        "",
        per_seed(results),
        END,
    ]
    return "\n".join(parts) + "\n"


def write_section(path: Path, text: str) -> None:
    """Put the section in the page: in place of the previous one, else before the hand-written
    notes (or at the end)."""
    from sun_sglang.eval.study_page import NOTES_MARK

    old = path.read_text() if path.is_file() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text.rstrip("\n") + rest.split(END, 1)[1]
    elif NOTES_MARK in old:
        head, notes = old.split(NOTES_MARK, 1)
        new = head.rstrip("\n") + "\n\n" + text + "\n" + NOTES_MARK + notes
    else:
        new = old + "\n" + text
    path.write_text(new)


def kept_section(page: str) -> str:
    """The section as a page holds it ("" if none): what the SmolLM2 study keeps when it rewrites."""
    if BEGIN not in page or END not in page:
        return ""
    return BEGIN + page.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"
