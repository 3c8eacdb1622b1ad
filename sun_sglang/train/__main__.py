"""python -m sun_sglang.train --task bb_2digit_addition --mode sun --out DIR [--base smollm2-135m]

Trains a prefill module (sun), a prefill module as a LoRA adapter on the base (lora) or a full
fine-tune (full) and writes a plain transformers checkpoint (lora: a peft adapter folder) to DIR;
`--resume` continues from DIR/checkpoint. The naive-composition baseline needs no training of its
own: it is the full fine-tune used as prefill module in front of the base (see eval)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sun_sglang.models import prepare, resolve_model
from sun_sglang.quant import decode_module
from sun_sglang.train.loop import TrainConfig, train_and_export


def parse(argv: list[str] | None = None) -> tuple[TrainConfig, bool, bool]:
    d = TrainConfig(base="", task="", out="")
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.train")
    ap.add_argument("--base", default="smollm2-135m", help="a model name (sun_sglang.models) or a folder")
    ap.add_argument("--task", required=True, help="a built-in task or a JSONL file of chats")
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", choices=["sun", "full", "lora"], default=d.mode)
    ap.add_argument("--decode", help="the frozen decode module if not the base (QSUN: DIR/dequantized)")
    for name in ("steps", "batch_size", "grad_accum", "warmup_steps", "seed", "n_test", "save_every"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    ap.add_argument("--lora-rank", type=int, default=d.lora_rank)
    ap.add_argument("--lora-targets", nargs="+", default=list(d.lora_targets), metavar="MODULE")
    for name in ("lr", "weight_decay", "lora_alpha"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default=d.dtype)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    ap.add_argument("--keep-checkpoint", action="store_true", help="keep OUT/checkpoint after export")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = vars(ap.parse_args(argv))
    resume, threads, keep = args.pop("resume"), args.pop("threads"), args.pop("keep_checkpoint")
    if threads:
        torch.set_num_threads(threads)
    args["lora_targets"] = tuple(args["lora_targets"])
    args["base"] = str(prepare(args["base"])) if "/" not in args["base"] else args["base"]
    if args["decode"]:
        args["decode"] = str(decode_module(resolve_model(args["decode"]), "cpu"))
    return TrainConfig(**args), resume, keep


def main(argv: list[str] | None = None) -> None:
    config, resume, keep = parse(argv)
    try:
        trainer = train_and_export(config, resume, keep)
    except RuntimeError as err:
        raise SystemExit(str(err)) from err
    seconds = json.loads((Path(config.out) / "sun_train.json").read_text())["train_seconds"]
    print(f"wrote {config.out} ({trainer.step} steps, {seconds:.0f} s, final loss {trainer.losses[-1]:.3f})")


if __name__ == "__main__":
    main()
