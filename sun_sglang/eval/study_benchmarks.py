"""The accuracy study on the paper's three benchmarks (tool calling: bfcl, math: gsm8k, code:
humaneval) with Qwen2.5-Coder-0.5B-Instruct: per task and seed, full fine-tuning, SUN, LoRA-SUN
and QSUN (the prefill module trained against a quantized decoder, per scheme) from the base,
then every configuration's answers on the same test examples, scored by the benchmark's own
scorer; docs/ACCURACY.md gets the table (study_benchmarks_page.py).

    python -m sun_sglang.eval.study_benchmarks [--tasks bfcl,gsm8k,humaneval] [--seeds 0,1]
        [--steps 80] [--qsun w8-gptq-g64,w4-gptq-g64] [--doc docs/ACCURACY.md]

Hours on a CPU, so nothing is done twice. The answers and training records are kept in the
repository (--results: docs/accuracy/<base>/<task>/seed<s>/), keyed by the settings they were
made with, one batch at a time: a configuration answered in any session is never trained or
answered again, and one stopped midway goes on from its last kept batch. The trained models stay
in --work (a training run continues from its last checkpoint there) and are only made for a
configuration whose answers are not all kept. `--only` limits what is run; every configuration
with kept answers is reported."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from transformers import AutoTokenizer

from sun_sglang import tasks
from sun_sglang.eval import answer_budget, answers_offline
from sun_sglang.eval.study_modules import Module, study_modules
from sun_sglang.eval.study_qsun import Scheme
from sun_sglang.machine import cpu_model
from sun_sglang.models import prepare
from sun_sglang.paths import home
from sun_sglang.tasks import scoring

TASKS = ("bfcl", "gsm8k", "humaneval")
N_TEST = {"bfcl": 200, "gsm8k": 100, "humaneval": 164}  # subsampled for CPU time: stated with SEs
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "accuracy"


def configurations(schemes: list[Scheme]) -> dict[str, tuple[str, str]]:
    """name -> (prefill module, decode module), as trained runs' names ("base": the base). QSUN
    columns are named by bit width, so one scheme per width."""
    widths = [s.bits for s in schemes]
    if len(set(widths)) != len(widths):
        raise ValueError(
            f"QSUN schemes {[s.name for s in schemes]}: one per bit width (columns: QSUN W<bits>)"
        )
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


def kept_answers(file: Path, key: dict) -> list[str]:
    """The answers kept in `file` if its first line is `key` (what they were made with), else none."""
    lines = file.read_text().splitlines() if file.is_file() else []
    same = lines and json.loads(lines[0]) == json.loads(json.dumps(key))  # as JSON holds it: tuples are lists
    return [json.loads(x) for x in lines[1:]] if same else []


def answers(
    file: Path,
    key: dict,
    prefill: str,
    decode: str,
    test: list[tasks.Example],
    args: argparse.Namespace,
    budget: int,
) -> list[str]:
    """The configuration's greedy answers on `test`, kept one batch at a time in `file` (first line:
    `key`); a run stopped midway goes on from the last kept batch."""
    done = kept_answers(file, key)
    if len(done) < len(test):
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "w" if not done else "a") as out:
            if not done:
                out.write(json.dumps(key, sort_keys=True) + "\n")
            rest = test[len(done) :]
            for chunk in answers_offline(prefill, decode, rest, args.eval_batch, args.eval_dtype, budget):
                for text in chunk:
                    out.write(json.dumps(text) + "\n")
                out.flush()
                done += chunk
                print(f"  {file.parent.name}/{file.stem}: {len(done)}/{len(test)}", flush=True)
    return done


def study_task(task: str, seed: int, base: str, work: Path, args: argparse.Namespace) -> dict:
    """Every configuration of one task and seed: its kept answers, or (if wanted) new ones."""
    schemes = [Scheme.parse(n) for n in args.qsun.split(",") if n]
    train_set, test = tasks.train_test(task, seed, args.n_test[task])
    modules = study_modules(task, seed, base, work, args, schemes)
    kept = args.results / task / f"seed{seed}"
    wanted = set(args.only.split(",")) if args.only else None
    made: dict[str, str] = {}  # module name -> its path, once made in this run

    @functools.cache
    def budget() -> int:  # every module answers within the base's tokenizer's budget
        return answer_budget(AutoTokenizer.from_pretrained(base), test)

    def path(name: str) -> str:
        if name not in made:
            made[name] = make(modules[name], kept)
        return made[name]

    correct: dict[str, list[bool]] = {}
    for name, (prefill, decode) in configurations(schemes).items():
        p, d = modules[prefill], modules[decode]
        key = {"prefill": p.key, "decode": d.key, "dtype": args.eval_dtype, "n": len(test)}
        file = kept / f"{name.replace(' ', '_')}.jsonl"
        texts = kept_answers(file, key)
        if len(texts) < len(test) and (wanted is None or name in wanted):
            texts = answers(file, key, path(prefill), path(decode), test, args, budget())
        if len(texts) == len(test):
            correct[name] = scoring.correct(texts, test)
            print(f"{task} seed {seed}: {name} {sum(correct[name]) / len(test):.3f}", flush=True)
    return {
        "task": task,
        "seed": seed,
        "n_train": len(train_set),
        "n_test": len(test),
        "correct": correct,
        "train_seconds": {m: training_seconds(kept, m) for m in ("full", "sun", "lora")},
    }


def make(module: Module, kept: Path) -> str:
    """The module's path, once it is there (trained or quantized now if not); a training record is
    kept beside the answers (what the page's times come from)."""
    record = module.build()
    if module.record_name:
        record = {**record, "cpu": cpu_model()}
        kept.mkdir(parents=True, exist_ok=True)
        (kept / f"train-{module.record_name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return module.path


def training_seconds(kept: Path, mode: str) -> float | None:
    file = kept / f"train-{mode}.json"
    return json.loads(file.read_text()).get("train_seconds") if file.is_file() else None


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
    # float32 by default: kept answers are pooled across sessions whose machines differ, and bf16 is
    # only fast with AMX (2-core AVX2 EPYC: 1.6 GFLOP/s bf16 against 86 float32).
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16-mixed"))
    ap.add_argument("--eval-dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--eval-batch", type=int, default=16)
    ap.add_argument("--qsun", default="w8-gptq-g64,w4-gptq-g64", help="QSUN decoder schemes ('' for none)")
    # One decoder for every task and seed: calibrated only where training data never meets a test
    # split (gsm8k and humaneval train on sources of their own; bfcl splits its problems by seed).
    ap.add_argument("--calib-tasks", default="gsm8k,humaneval", help="the quantized decoder's calibration")
    ap.add_argument("--only", default="", help="configurations to run, e.g. 'base,full FT,SUN'")
    ap.add_argument("--n-test", default="", help="test examples per task, e.g. gsm8k=50 (default: N_TEST)")
    ap.add_argument("--work", type=Path, default=home() / "study-benchmarks", help="trained models")
    ap.add_argument("--results", type=Path, default=RESULTS, help="kept answers and training records")
    ap.add_argument("--doc", type=Path, help="write the table into this page (docs/ACCURACY.md)")
    args = ap.parse_args(argv)
    args.n_test = {**N_TEST, **{k: int(v) for k, v in (x.split("=") for x in args.n_test.split(",") if x)}}
    base = str(prepare(args.base))
    work, args.results = args.work / args.base, args.results / args.base
    results = [
        study_task(task, int(seed), base, work, args)
        for seed in args.seeds.split(",")
        for task in args.tasks.split(",")
    ]
    from sun_sglang.eval import study_benchmarks_page

    names = list(configurations([Scheme.parse(n) for n in args.qsun.split(",") if n]))
    text = study_benchmarks_page.section(results, args, names)
    print(text)
    if args.doc:
        study_benchmarks_page.write_section(args.doc, text)


if __name__ == "__main__":
    main()
