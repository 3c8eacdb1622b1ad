"""python -m sun_sglang.quant --base smollm2-135m --bits 4 --group-size 64 --out DIR
    [--method gptq|awq|awq-gptq]
    [--calib-tasks bb_2digit_addition,bb_hyperbaton] [--n-calib 128]

Quantizes the decode module (weight-only GPTQ or AWQ, llm-compressor) into DIR/packed (compressed-tensors,
for SGLang on a GPU) and DIR/dequantized (a plain checkpoint: CPU serving, QSUN training)."""

from __future__ import annotations

import argparse
import json

from sun_sglang.models import prepare
from sun_sglang.quant.gptq import METHODS, QuantConfig, quantize


def main(argv: list[str] | None = None) -> None:
    d = QuantConfig(base="", out="")
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.quant")
    ap.add_argument("--base", default="smollm2-135m", help="a model name (sun_sglang.models) or a folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bits", type=int, choices=[4, 8], default=d.bits)
    ap.add_argument("--method", choices=METHODS, default=d.method)
    ap.add_argument("--group-size", type=int, default=d.group_size)
    ap.add_argument("--calib-tasks", default=",".join(d.calib_tasks))
    ap.add_argument("--n-calib", type=int, default=d.n_calib)
    ap.add_argument("--max-seq-len", type=int, default=d.max_seq_len)
    ap.add_argument("--seed", type=int, default=d.seed)
    args = ap.parse_args(argv)
    base = args.base if "/" in args.base else str(prepare(args.base))
    config = QuantConfig(
        base=base,
        out=args.out,
        bits=args.bits,
        method=args.method,
        group_size=args.group_size,
        calib_tasks=tuple(args.calib_tasks.split(",")),
        n_calib=args.n_calib,
        max_seq_len=args.max_seq_len,
        seed=args.seed,
    )
    record = quantize(config)
    print(json.dumps({"out": args.out, "seconds": record["quantize_seconds"], "n_calib": record["n_calib"]}))


if __name__ == "__main__":
    main()
