"""docs/ACCURACY.md from the study's results: the main table, then the extra runs, QSUN and the
training-step table; the hand-written reading below NOTES_MARK is kept."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from sun_sglang.eval.study_cache import CONFIGS, MODES
from sun_sglang.eval.study_qsun import decoders_table, qsun_table
from sun_sglang.eval.study_seeds import longer_table, seeds_table


def table(results: list[dict], args: argparse.Namespace) -> str:
    head = "| task | train / test | " + " | ".join(CONFIGS) + " | SUN - full FT | LoRA-SUN - full FT |"
    lines = [head + " train time full / SUN / LoRA |", "|" + "---|" * (len(CONFIGS) + 5)]
    for r in results:
        acc = r["accuracy"]
        cells = " | ".join(f"{acc[name] * 100:.1f}" for name in CONFIGS)
        gaps = " | ".join(f"{(acc[name] - acc['full FT']) * 100:+.1f}" for name in ("SUN", "LoRA-SUN"))
        times = " / ".join(f"{r['train_seconds'][m]:.0f} s" for m in MODES)
        lines.append(f"| {r['task']} | {r['n_train']} / {r['n_test']} | {cells} | {gaps} | {times} |")
    conditions = (
        f"SmolLM2-135M (float32), {args.steps} steps of batch {args.batch_size}, AdamW lr {args.lr}"
        f" (LoRA-SUN: lr {args.lora_lr}, rank {args.lora_rank}, alpha 2 x rank, every linear layer)"
        f" (warm-up 5 steps, linear decay), seed {args.seed}; exact match (%) on the held-out split,"
        f" greedy; {platform.machine()}, {torch.get_num_threads()} torch threads."
    )
    return "\n".join(lines) + "\n\n" + conditions + "\n"


def page(
    results: list[dict],
    args: argparse.Namespace,
    step_report: str | None,
    qsun: list[dict] | None = None,
    more_seeds: list[dict] | None = None,
    decoders: list[dict] | None = None,
    longer: list[dict] | None = None,
) -> str:
    rerun = (
        f"python -m sun_sglang.eval.study --steps {args.steps} --seed {args.seed}"
        + (f" --more-seeds {args.more_seeds}" if args.more_seeds else "")
        + (f" --longer {args.longer} --longer-steps {args.longer_steps}" if args.longer else "")
        + (f" --qsun {args.qsun}" if args.qsun else " --qsun ''")
        + (f" --qsun-decoders {args.qsun_decoders}" if args.qsun_decoders else "")
        + " --doc docs/ACCURACY.md"
    )
    parts = [
        "# Accuracy: SUN and LoRA-SUN beside full fine-tuning, naive composition and the base",
        "",
        f"Written by `{rerun}`; rerun it to reproduce (trained models and accuracies are cached under"
        " `~/.cache/sun-sglang/study`; delete it for a cold run). Train times are wall clock.",
        "",
        "Per task: full fine-tuning and SUN are trained from the base with the same data, steps,"
        " batch, learning rate and seed; naive composition is the full fine-tune used as prefill"
        " module in front of the base (no SUN training); LoRA-SUN is SUN training of a LoRA adapter"
        " on the base as prefill module (served by a multi-LoRA prefill server, `tests/test_lora_e2e.py`)."
        " Configurations, as (prefill module, decode module): base = (base, base), full FT = (full,"
        " full), naive = (full, base), SUN = (SUN prefill module, base), LoRA-SUN = (base + adapter,"
        " base). Greedy decoding through the SUN reference (prompt through the"
        " prefill module, first token from its logits, the rest from the decode module on that KV:"
        " what the servers do, and checked against them in `tests/test_cluster_e2e.py`).",
        "",
        table(results, args),
        "Tasks (`sun_sglang/tasks/data/README.md`): BIG-bench 2-digit addition (a number: 2-3"
        " digit tokens, so the decode module writes most of the answer); BIG-bench hyperbaton (which"
        " of two adjective orders is right, `a` or `b`: a classification); reasoning-gym"
        " family_relationships (a relation word such as `mother-in-law`, from a short family"
        " story); BIG-bench sports understanding (plausible / implausible). The base model is not"
        " tuned to these answer formats, so its exact-match score is near zero.",
    ]
    if more_seeds:
        parts += _section(
            "Across seeds",
            "Full fine-tuning and SUN trained again with other seeds (each seed its own train/test"
            " split, data order and run), same steps, batch and learning rate; mean ± standard deviation"
            " over the seeds of exact match (%) on each seed's held-out split.",
            seeds_table(results, more_seeds, args.seed),
        )
    if longer:
        parts += _section(
            "Longer training",
            f"Full fine-tuning and SUN trained for {args.longer_steps} steps instead of {args.steps}"
            f" (seed {args.seed}, same split, batch and learning rate) on the tasks that stayed at"
            " their label prior.",
            longer_table(results, longer, args.steps),
        )
    if qsun:
        parts += _section(
            "QSUN: a quantized shared decode module",
            "The base quantized once per scheme (`python -m sun_sglang.quant`: weight-only, with"
            " llm-compressor, symmetric integers, calibrated on 128 training-split chats of the"
            " study tasks), decoding through its dequantized weights (numerically what SGLang's low-bit"
            " decode servers compute). QSUN trains the prefill module against that decoder (same steps,"
            ' batch, learning rate, seed as SUN); "no retraining" puts the SUN prefill module, trained'
            " against the float32 base, in front of it.",
            qsun_table(qsun, results),
        )
    if decoders:
        parts += [
            "Decoder schemes compared without retraining (the SUN prefill module in front of each):",
            "",
            decoders_table(decoders, results),
        ]
    if step_report:
        parts += ["", "## One training step: SUN, LoRA-SUN and full fine-tuning", "", step_report]
    return "\n".join(parts) + "\n"


def _section(title: str, intro: str, body: str) -> list[str]:
    return ["", f"## {title}", "", intro, "", body]


NOTES_MARK = "<!-- Below: written by people, kept when the study rewrites the page. -->"


def write_doc(path: Path, generated: str) -> None:
    """The generated page, the benchmarks study's section, then the hand-written reading of it
    (both kept from the previous page)."""
    from sun_sglang.eval.study_benchmarks_page import kept_section

    old = path.read_text() if path.is_file() else ""
    blank = "\n## Reading the table\n\n(to be written)\n"
    notes = old.split(NOTES_MARK, 1)[1] if NOTES_MARK in old else blank
    benchmarks = kept_section(old)
    path.write_text(generated + "\n" + (benchmarks + "\n" if benchmarks else "") + NOTES_MARK + notes)
