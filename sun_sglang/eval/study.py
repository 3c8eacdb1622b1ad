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
from pathlib import Path

from sun_sglang import tasks
from sun_sglang.eval import evaluate_offline
from sun_sglang.eval.study_cache import CONFIGS, MODES, cached, run_settings, train
from sun_sglang.eval.study_page import page, table, write_doc
from sun_sglang.eval.study_qsun import Scheme, decoder_row, decoders_table, qsun_table, qsun_task
from sun_sglang.eval.study_seeds import longer_table, seed_task, seeds_table
from sun_sglang.models import prepare
from sun_sglang.paths import home
from sun_sglang.train import step_cost
from sun_sglang.train.config import TrainConfig

STUDY_TASKS = ("bb_2digit_addition", "bb_hyperbaton", "rg_family_relationships", "bb_sports_understanding")
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
    train_set, test = tasks.train_test(task, args.seed, args.n_test)
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
    ap.add_argument(
        "--longer", default="", help="tasks to train again for --longer-steps, e.g. bb_hyperbaton"
    )
    ap.add_argument("--longer-steps", type=int, default=240)
    args = ap.parse_args(argv)
    base = str(prepare(args.base))
    results = [study_task(task, base, args.work, args) for task in args.tasks.split(",")]
    print(table(results, args))
    more = [int(s) for s in args.more_seeds.split(",") if s]
    seeded = [t for t in args.seeded_tasks.split(",") if t]
    more_seeds = [seed_task(t, base, args.work, args, s) for t in seeded for s in more]
    if more_seeds:
        print(seeds_table(results, more_seeds, args.seed))
    longer = [
        seed_task(t, base, args.work, args, args.seed, args.longer_steps) for t in args.longer.split(",") if t
    ]
    if longer:
        print(longer_table(results, longer, args.steps))
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
        rows = step_cost.measure_both(args.base, args.batch_size, steps=6)
        step_report = step_cost.report(rows, args.base, args.batch_size, steps=6)
        print(step_report)
    if args.results:
        out = {
            "results": results,
            "qsun": qsun,
            "decoders": decoders,
            "more_seeds": more_seeds,
            "longer": longer,
        }
        out["args"] = vars(args)
        args.results.write_text(json.dumps(out, indent=1, default=str))
    if args.doc:
        write_doc(args.doc, page(results, args, step_report, qsun, more_seeds, decoders, longer))


if __name__ == "__main__":
    main()
