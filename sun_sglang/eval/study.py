"""The accuracy study: per task, train full fine-tuning, SUN and LoRA-SUN (the prefill module as a
LoRA adapter) from the base, then measure base alone, full fine-tuning, naive composition (the
full fine-tune as prefill module, the base as decode module), SUN and LoRA-SUN on the held-out
split; write the table to docs/ACCURACY.md. Beside it: more seeds (full FT and SUN) for the tasks
where they differ, and QSUN (study_qsun).

    python -m sun_sglang.eval.study [--tasks bb_2digit_addition,...] [--steps 60] [--seed 0]
        [--more-seeds 1,2] [--qsun w4-gptq-g64,w8-gptq-g64,w4-awq-g64]

Trained models are kept under --work and reused when their settings match (rerun = re-evaluate).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from sun_sglang import tasks
from sun_sglang.bench import train_step
from sun_sglang.eval import evaluate_offline
from sun_sglang.eval.study_cache import cached, run_settings, train
from sun_sglang.eval.study_qsun import Scheme, decoder_row, decoders_table, qsun_table, qsun_task
from sun_sglang.eval.study_seeds import seed_task, seeds_table
from sun_sglang.models import prepare
from sun_sglang.paths import home
from sun_sglang.train.loop import TrainConfig

STUDY_TASKS = ("bb_2digit_addition", "bb_hyperbaton", "rg_family_relationships", "bb_sports_understanding")
CONFIGS = {  # name -> (prefill module, decode module)
    "base": ("base", "base"),
    "full FT": ("full", "full"),
    "naive": ("full", "base"),
    "SUN": ("sun", "base"),
    "LoRA-SUN": ("lora", "base"),
}
MODES = ("full", "sun", "lora")
# QSUN is measured where the configurations differ (the other two tasks sit at their label prior).
QSUN_TASKS = ("bb_2digit_addition", "rg_family_relationships", "bb_sports_understanding")
# More seeds where SUN and full fine-tuning differ.
SEEDED_TASKS = ("bb_2digit_addition", "rg_family_relationships")


def study_task(task: str, base: str, work: Path, args: argparse.Namespace) -> dict:
    common = run_settings(task, base, args)
    lora = dict(lr=args.lora_lr, lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank)
    records = {
        mode: train(
            TrainConfig(
                out=str(work / task / mode), mode=mode, **{**common, **(lora if mode == "lora" else {})}
            )
        )
        for mode in MODES
    }
    paths = {"base": base, **{mode: str(work / task / mode) for mode in MODES}}
    train_set, test = tasks.split(tasks.load(task), args.seed, args.n_test)
    accuracy = {}
    for name, (prefill, decode) in CONFIGS.items():
        modes = ("lora",) if prefill == "lora" else ("full", "sun")
        cache = work / task / ("accuracy-lora.json" if prefill == "lora" else "accuracy.json")
        accuracy[name] = cached(
            cache,
            {m: records[m] for m in modes},
            name,
            lambda p=paths[prefill], d=paths[decode]: evaluate_offline(p, d, test),
        )
        print(f"{task}: {name} {accuracy[name]:.3f}", flush=True)
    return {
        "task": task,
        "n_train": len(train_set),
        "n_test": len(test),
        "accuracy": accuracy,
        "train_seconds": {mode: r.get("train_seconds") for mode, r in records.items()},
        "final_loss": {mode: round(r["losses"][-1], 3) for mode, r in records.items()},
    }


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
) -> str:
    rerun = (
        f"python -m sun_sglang.eval.study --steps {args.steps} --seed {args.seed}"
        + (f" --more-seeds {args.more_seeds}" if args.more_seeds else "")
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
        parts += [
            "",
            "## Across seeds",
            "",
            "Full fine-tuning and SUN trained again with other seeds (each seed its own train/test"
            " split, data order and run), same steps, batch and learning rate; mean ± standard deviation"
            " over the seeds of exact match (%) on each seed's held-out split.",
            "",
            seeds_table(results, more_seeds, args.seed),
        ]
    if qsun:
        parts += [
            "",
            "## QSUN: a quantized shared decode module",
            "",
            "The base quantized once per scheme (`python -m sun_sglang.quant`: weight-only, with"
            " llm-compressor, symmetric integers, calibrated on 128 training-split chats of the"
            " study tasks), decoding through its dequantized weights (numerically what SGLang's low-bit"
            " decode servers compute). QSUN trains the prefill module against that decoder (same steps,"
            ' batch, learning rate, seed as SUN); "no retraining" puts the SUN prefill module, trained'
            " against the float32 base, in front of it.",
            "",
            qsun_table(qsun, results),
        ]
    if decoders:
        parts += [
            "Decoder schemes compared without retraining (the SUN prefill module in front of each):",
            "",
            decoders_table(decoders, results),
        ]
    if step_report:
        parts += ["", "## One training step: SUN, LoRA-SUN and full fine-tuning", "", step_report]
    return "\n".join(parts) + "\n"


NOTES_MARK = "<!-- Below: written by people, kept when the study rewrites the page. -->"


def write_doc(path: Path, generated: str) -> None:
    """The generated page, then the hand-written reading of it (kept from the previous page)."""
    old = path.read_text() if path.is_file() else ""
    blank = "\n## Reading the table\n\n(to be written)\n"
    notes = old.split(NOTES_MARK, 1)[1] if NOTES_MARK in old else blank
    path.write_text(generated + "\n" + NOTES_MARK + notes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.eval.study")
    ap.add_argument("--tasks", default=",".join(STUDY_TASKS))
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lora-lr", type=float, default=1e-3)
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--work", type=Path, default=home() / "study")
    ap.add_argument("--results", type=Path, help="write the results JSON here too")
    ap.add_argument("--doc", type=Path, help="write the whole page (docs/ACCURACY.md) here")
    ap.add_argument("--no-step-bench", action="store_true", help="skip the training-step measurement")
    ap.add_argument("--qsun", default="w4-gptq-g64,w8-gptq-g64", help="QSUN decoder schemes ('' for none)")
    ap.add_argument("--qsun-tasks", default=",".join(QSUN_TASKS))
    ap.add_argument(
        "--qsun-decoders",
        default="w4-gptq-g64,w4-gptq-g32,w4-awq-g64",
        help="schemes compared without retraining on the first QSUN task",
    )
    ap.add_argument("--more-seeds", default="", help="more seeds for --seeded-tasks, e.g. 1,2")
    ap.add_argument("--seeded-tasks", default=",".join(SEEDED_TASKS))
    args = ap.parse_args(argv)
    base = str(prepare(args.base))
    results = [study_task(task, base, args.work, args) for task in args.tasks.split(",")]
    print(table(results, args))
    more = [int(s) for s in args.more_seeds.split(",") if s]
    seeded = [t for t in args.seeded_tasks.split(",") if t]
    more_seeds = [seed_task(t, base, args.work, args, s) for t in seeded for s in more]
    if more_seeds:
        print(seeds_table(results, more_seeds, args.seed))
    schemes = [Scheme.parse(name) for name in args.qsun.split(",") if name]
    qsun = [qsun_task(t, base, args.work, args, q) for q in schemes for t in args.qsun_tasks.split(",") if t]
    if qsun:
        print(qsun_table(qsun, results))
    first = args.qsun_tasks.split(",")[0]
    decoders = [
        decoder_row(first, base, args.work, args, Scheme.parse(n)) for n in args.qsun_decoders.split(",") if n
    ]
    if decoders:
        print(decoders_table(decoders, results))
    step_report = None
    if not args.no_step_bench:
        rows = train_step.measure_both(args.base, args.batch_size, steps=6)
        step_report = train_step.report(rows, args.base, args.batch_size, steps=6)
        print(step_report)
    if args.results:
        out = {"results": results, "qsun": qsun, "decoders": decoders, "more_seeds": more_seeds}
        out["args"] = vars(args)
        args.results.write_text(json.dumps(out, indent=1, default=str))
    if args.doc:
        write_doc(args.doc, page(results, args, step_report, qsun, more_seeds, decoders))


if __name__ == "__main__":
    main()
