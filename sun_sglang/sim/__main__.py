"""python -m sun_sglang.sim solve|sweep|validate|report

solve     one workload point: fewest decode GPUs for SUN and conventional, their figures
sweep     the paper-scale grid (sun_sglang.sim.grid) -> DIR/sweep.json and plots
lora-sweep  adapter tasks: SUN-LoRA, multi-LoRA, conventional, QSUN (sim.lora_sweep) -> DIR/lora_sweep.json
validate  predict a measured CPU run (bench compare's result.json) -> DIR/cpu_compare-NAME.json
report    docs/PERFORMANCE.md from DIR (hand-written notes below its marker are kept)
qsun      QSUN's decode-step speed-up (low-bit weights vs bf16) by batch and context -> DIR/qsun_speedup.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sun_sglang.sim import grid, lora_sweep, qsun, report
from sun_sglang.sim.costs import GPUS, MODELS
from sun_sglang.sim.sweep import Point, Slo, solve
from sun_sglang.sim.validate import validate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sun_sglang.sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    one = sub.add_parser("solve")
    one.add_argument("--gpu", choices=sorted(GPUS), default="H100")
    one.add_argument("--model", choices=sorted(MODELS), default="Llama-3.1-8B")
    one.add_argument("--tasks", type=int, default=16)
    one.add_argument("--alpha", type=float, default=1.0)
    one.add_argument("--rate", type=float, default=64.0)
    one.add_argument("--output-tokens", type=int, default=256)
    one.add_argument("--prompt-tokens", type=int, default=1024)
    one.add_argument("--requests", type=int, default=2000)
    sw = sub.add_parser("sweep")
    for p in (one, sw, lsw := sub.add_parser("lora-sweep")):
        p.add_argument("--slo-tpot-s", type=float, default=Slo().tpot_p90_s, help="TPOT p90 bound")
        p.add_argument("--slo-ttft-s", type=float, default=Slo().ttft_p90_s, help="TTFT p90 bound")
    sw.add_argument("--out-dir", default="docs/performance")
    lsw.add_argument("--out-dir", default="docs/performance")
    val = sub.add_parser("validate")
    val.add_argument("--compare", required=True, help="result.json of python -m sun_sglang.bench compare")
    val.add_argument("--out-dir", default="docs/performance")
    val.add_argument("--name", default="run", help="writes OUT_DIR/cpu_compare-NAME.json")
    val.add_argument("--steps-from", help="another run's result.json: calibrate on its logged steps too")
    val.add_argument("--steps-from-name", default="other", help="that run's name on the page")
    q = sub.add_parser("qsun")
    q.add_argument("--model", choices=sorted(MODELS), default="Llama-3.1-8B")
    q.add_argument("--group-size", type=int, default=128)
    q.add_argument("--out-dir", default="docs/performance")
    rep = sub.add_parser("report")
    rep.add_argument("--data", default="docs/performance")
    rep.add_argument("--doc", default="docs/PERFORMANCE.md")
    args = ap.parse_args(argv)

    if args.command == "solve":
        point = Point(
            args.gpu,
            args.model,
            args.tasks,
            args.alpha,
            args.rate,
            args.output_tokens,
            args.prompt_tokens,
            args.requests,
        )
        print(json.dumps(solve(point, Slo(args.slo_tpot_s, args.slo_ttft_s)), indent=1))
    elif args.command == "sweep":
        grid.run(Path(args.out_dir), Slo(args.slo_tpot_s, args.slo_ttft_s))
    elif args.command == "lora-sweep":
        lora_sweep.run(Path(args.out_dir), Slo(args.slo_tpot_s, args.slo_ttft_s))
    elif args.command == "validate":
        result = json.loads(Path(args.compare).read_text())
        other = json.loads(Path(args.steps_from).read_text()) if args.steps_from else None
        out = report.cpu_summary(result, validate(result, other, args.steps_from_name))
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.out_dir) / f"cpu_compare-{args.name}.json").write_text(json.dumps(out, indent=1))
        for name, cal in out["validation"]["calibrations"].items():
            errors = {m: {f: v["error"] for f, v in figs.items()} for m, figs in cal["modes"].items()}
            print(name, json.dumps(errors, indent=1))
    elif args.command == "qsun":
        rows = [
            r
            for gpu in ("H100", "H200")
            for bits in (4, 8)
            for r in qsun.speedups(gpu, args.model, bits, args.group_size)
        ]
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.out_dir) / "qsun_speedup.json").write_text(
            json.dumps({"group_size": args.group_size, "rows": rows}, indent=1)
        )
        print(qsun.table(rows))
    else:
        report.write(Path(args.data), Path(args.doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
