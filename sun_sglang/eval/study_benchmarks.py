"""The accuracy study on the paper's three benchmarks (tool calling: bfcl, math: gsm8k, code:
humaneval) with Qwen2.5-Coder-0.5B-Instruct: per task and seed, full fine-tuning, SUN, LoRA-SUN
and QSUN (the prefill module trained against a quantized decoder, per scheme) from the base,
then every configuration's answers on the same test examples, scored by the benchmark's own
scorer; docs/ACCURACY.md gets the table (study_benchmarks_page.py).

    python -m sun_sglang.eval.study_benchmarks [--tasks bfcl,gsm8k,humaneval] [--seeds 0,1]
        [--steps 80] [--qsun w8-gptq-g64,w4-gptq-g64] [--doc docs/ACCURACY.md]

Hours on a CPU: everything is kept under --work and reused when its settings match, answers one
batch at a time, so a run stopped anywhere continues where it was (a training run from its last
checkpoint). `--only` limits a run to some configurations (the rest are reported as not run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoTokenizer

from sun_sglang import tasks
from sun_sglang.eval import answer_budget, answers_offline
from sun_sglang.eval.study_cache import train
from sun_sglang.eval.study_qsun import Scheme, quantized_base
from sun_sglang.models import prepare
from sun_sglang.paths import home
from sun_sglang.tasks import scoring
from sun_sglang.train.config import TrainConfig

TASKS = ("bfcl", "gsm8k", "humaneval")
N_TEST = {"bfcl": 200, "gsm8k": 100, "humaneval": 164}  # subsampled for CPU time: stated with SEs


def configurations(schemes: list[Scheme]) -> dict[str, tuple[str, str]]:
    """name -> (prefill module, decode module), as trained runs' names ("base": the base)."""
    out = {
        "base": ("base", "base"),
        "full FT": ("full", "full"),
        "naive": ("full", "base"),
        "SUN": ("sun", "base"),
        "LoRA-SUN": ("lora", "base"),
    }
    for s in schemes:
        out[f"QSUN W{s.bits}"] = (f"qsun-{s.name}", f"quant-{s.name}")
    return out


def train_runs(
    task: str, seed: int, base: str, work: Path, args: argparse.Namespace, needed: set[str]
) -> dict:
    """The trained models the wanted configurations need: name -> (path, training record)."""
    common = dict(
        base=base,
        task=task,
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        activation_checkpointing=True,  # 0.5B at up to 1,400 tokens: 24 GiB is not enough without
        lr=args.lr,
        seed=seed,
        n_test=args.n_test.get(task, 200),
        save_every=max(10, args.steps // 8),
        precision=args.precision,
    )
    folder = work / task / f"seed{seed}"
    lora = dict(lr=args.lora_lr, lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank)
    runs: dict[str, tuple[str, dict]] = {"base": (base, {})}
    for mode in ("full", "sun", "lora"):
        if mode in needed:
            extra = lora if mode == "lora" else {}
            config = TrainConfig(out=str(folder / mode), mode=mode, **{**common, **extra})
            runs[mode] = (config.out, train(config))
    for name in needed:
        if name.startswith("qsun-"):
            scheme = Scheme.parse(name.removeprefix("qsun-"))
            decode = quantized_base(base, work, scheme, list(args.calib_tasks.split(",")))
            config = TrainConfig(out=str(folder / name), mode="sun", decode=decode, **common)
            quant = json.loads((Path(decode) / "quant.json").read_text())["config"]
            runs[name] = (config.out, train(config))
            runs[f"quant-{scheme.name}"] = (decode, {"quant": quant})
    return runs


def answers(
    file: Path, key: dict, prefill: str, decode: str, test: list[tasks.Example], args: argparse.Namespace
) -> list[str]:
    """The configuration's greedy answers on `test`, kept one batch at a time in `file` (first line:
    what they were made with); a run stopped midway goes on from the last kept batch."""
    key_text = json.dumps(key, sort_keys=True)
    lines = file.read_text().splitlines() if file.is_file() else []
    done = [json.loads(x) for x in lines[1:]] if lines and lines[0] == key_text else []
    if len(done) < len(test):
        budget = answer_budget(AutoTokenizer.from_pretrained(prefill), test)  # the whole test set's
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "w" if not done else "a") as out:
            if not done:
                out.write(key_text + "\n")
            rest = test[len(done) :]
            for chunk in answers_offline(prefill, decode, rest, args.eval_batch, args.eval_dtype, budget):
                for text in chunk:
                    out.write(json.dumps(text) + "\n")
                out.flush()
                done += chunk
                print(f"  {file.parent.name}/{file.stem}: {len(done)}/{len(test)}", flush=True)
    return done


def study_task(task: str, seed: int, base: str, work: Path, args: argparse.Namespace) -> dict:
    schemes = [Scheme.parse(n) for n in args.qsun.split(",") if n]
    wanted = {k: v for k, v in configurations(schemes).items() if not args.only or k in args.only.split(",")}
    needed = {m for pair in wanted.values() for m in pair if m != "base" and not m.startswith("quant-")}
    runs = train_runs(task, seed, base, work, args, needed)
    train_set, test = tasks.train_test(task, seed, args.n_test.get(task, 200))
    correct: dict[str, list[bool]] = {}
    for name, (prefill, decode) in wanted.items():
        key = {
            "prefill": runs[prefill][1],
            "decode": runs[decode][1],
            "dtype": args.eval_dtype,
            "n": len(test),
        }
        file = work / task / f"seed{seed}" / "answers" / f"{name.replace(' ', '_')}.jsonl"
        texts = answers(file, key, runs[prefill][0], runs[decode][0], test, args)
        correct[name] = scoring.correct(texts, test)
        print(f"{task} seed {seed}: {name} {sum(correct[name]) / len(test):.3f}", flush=True)
    seconds = {name: record.get("train_seconds") for name, (_, record) in runs.items() if record}
    return {
        "task": task,
        "seed": seed,
        "n_train": len(train_set),
        "n_test": len(test),
        "correct": correct,
        "train_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.eval.study_benchmarks")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--base", default="qwen2.5-coder-0.5b")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--lora-lr", type=float, default=2e-4)
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--precision", default="bf16-mixed", choices=("fp32", "bf16-mixed"))
    ap.add_argument("--eval-dtype", default="bfloat16", choices=("float32", "bfloat16"))
    ap.add_argument("--eval-batch", type=int, default=16)
    ap.add_argument("--qsun", default="w8-gptq-g64,w4-gptq-g64", help="QSUN decoder schemes ('' for none)")
    # One decoder for every task and seed: calibrated only where training data never meets a test
    # split (gsm8k and humaneval train on sources of their own; bfcl splits its problems by seed).
    ap.add_argument("--calib-tasks", default="gsm8k,humaneval", help="the quantized decoder's calibration")
    ap.add_argument("--only", default="", help="configurations to run, e.g. 'base,full FT,SUN'")
    ap.add_argument("--n-test", default="", help="test examples per task, e.g. gsm8k=50 (default: N_TEST)")
    ap.add_argument("--work", type=Path, default=home() / "study-benchmarks")
    ap.add_argument("--doc", type=Path, help="write the table into this page (docs/ACCURACY.md)")
    args = ap.parse_args(argv)
    args.n_test = {**N_TEST, **{k: int(v) for k, v in (x.split("=") for x in args.n_test.split(",") if x)}}
    base = str(prepare(args.base))
    work = args.work / args.base
    results = [
        study_task(task, int(seed), base, work, args)
        for seed in args.seeds.split(",")
        for task in args.tasks.split(",")
    ]
    (work / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, default=str))
    from sun_sglang.eval import study_benchmarks_page

    text = study_benchmarks_page.section(results, args)
    print(text)
    if args.doc:
        study_benchmarks_page.write_section(args.doc, text)


if __name__ == "__main__":
    main()
