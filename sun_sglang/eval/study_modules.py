"""The benchmarks study's modules: the base, the trained prefill modules (full, SUN, LoRA-SUN,
QSUN per scheme) and the quantized decoders, each with the settings it is made with (what kept
answers are keyed by) and how to make it, so that nothing is made before some answer needs it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from sun_sglang.eval.study_cache import settings, train
from sun_sglang.eval.study_qsun import Scheme, quant_config, quantized_base
from sun_sglang.train.config import TrainConfig


@dataclass(frozen=True)
class Module:
    path: str  # where it is once made
    key: dict  # the settings it is made with (no output folder: the same anywhere)
    build: Callable[[], dict]  # makes it unless there; its record
    record_name: str = ""  # kept beside the answers as train-<name>.json (trained modules)


def trained(config: TrainConfig, name: str, before: Callable[[], object] = lambda: None) -> Module:
    key = {k: v for k, v in settings(msgspec.to_builtins(config)).items() if k != "out"}

    def build() -> dict:
        before()  # what the training needs made first (a quantized decoder)
        return train(config)

    return Module(config.out, key, build, name)


def study_modules(
    task: str, seed: int, base: str, work: Path, args: argparse.Namespace, schemes: list[Scheme]
) -> dict[str, Module]:
    """name -> Module: base, full, sun, lora, and quant-<scheme> / qsun-<scheme> per scheme."""
    common = dict(
        base=base,
        task=task,
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        activation_checkpointing=True,  # 0.5B at up to 1,400 tokens: 24 GiB is not enough without
        lr=args.lr,
        seed=seed,
        n_test=args.n_test[task],
        save_every=max(10, args.steps // 8),
        precision=args.precision,
    )
    folder = work / task / f"seed{seed}"
    lora = dict(lr=args.lora_lr, lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank)
    out = {"base": Module(base, {"model": args.base}, lambda: {})}
    for mode in ("full", "sun", "lora"):
        extra = lora if mode == "lora" else {}
        out[mode] = trained(TrainConfig(out=str(folder / mode), mode=mode, **{**common, **extra}), mode)
    calib = args.calib_tasks.split(",")
    for s in schemes:
        quant = quant_config(base, work, s, calib)
        decode = str(Path(quant.out) / "dequantized")

        def make(s: Scheme = s, decode: str = decode) -> dict:
            quantized_base(base, work, s, calib)
            return json.loads((Path(decode) / "quant.json").read_text())

        key = {k: v for k, v in json.loads(msgspec.json.encode(quant)).items() if k != "out"}
        out[f"quant-{s.name}"] = Module(decode, key, make)
        config = TrainConfig(out=str(folder / f"qsun-{s.name}"), mode="sun", decode=decode, **common)
        out[f"qsun-{s.name}"] = trained(config, f"qsun-{s.name}", make)
    return out
