"""python -m sun_sglang.train --task bb_2digit_addition --mode sun --out DIR [--base smollm2-135m]
torchrun --nproc-per-node N -m sun_sglang.train --config run.yaml [--steps 200 ...]

Trains a prefill module (sun), a prefill module as a LoRA adapter on the base (lora) or a full
fine-tune (full) and writes a plain transformers checkpoint (lora: a peft adapter folder) to DIR;
`--resume` continues from DIR/checkpoint. Under torchrun the model is sharded over the processes
(FSDP2) and --batch-size is per process. `--config` takes a YAML file of the same settings (the
flags' names with underscores); flags given on the command line win. The naive-composition
baseline needs no training of its own: it is the full fine-tune used as prefill module in front
of the base (see eval)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import torch

from sun_sglang.models import prepare, resolve_model
from sun_sglang.quant import decode_module
from sun_sglang.train.config import TrainConfig
from sun_sglang.train.distributed import join, leave
from sun_sglang.train.loop import train_and_export

_RUN_OPTIONS = {"resume": False, "keep_checkpoint": False, "threads": 0}  # not part of TrainConfig


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig(base="", task="", out="")
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.train", argument_default=argparse.SUPPRESS)
    ap.add_argument("--config", help="a YAML file of these settings (command-line flags win)")
    ap.add_argument("--base", help="a model name (sun_sglang.models) or a folder (default smollm2-135m)")
    ap.add_argument("--task", help="a built-in task or a JSONL file of chats")
    ap.add_argument("--out")
    ap.add_argument("--mode", choices=["sun", "full", "lora"], help=f"default {d.mode}")
    ap.add_argument("--decode", help="the frozen decode module if not the base (QSUN: DIR/dequantized)")
    ap.add_argument("--decode-sharding", choices=["replicate", "shard"], help="under torchrun")
    for name in (
        "steps",
        "batch_size",
        "grad_accum",
        "warmup_steps",
        "seed",
        "n_test",
        "save_every",
        "lora_rank",
    ):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"default {getattr(d, name)}")
    ap.add_argument("--lora-targets", nargs="+", metavar="MODULE")
    ap.add_argument("--report-to", nargs="+", metavar="TARGET", help="jsonl (default), tensorboard, none")
    for name in ("lr", "weight_decay", "lora_alpha"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, help=f"default {getattr(d, name)}")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"])
    ap.add_argument(
        "--precision", choices=["fp32", "bf16-mixed"], help="bf16-mixed: bf16 compute, fp32 weights"
    )
    ap.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute each layer's activations in the backward pass (less memory, same loss)",
    )
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    ap.add_argument("--keep-checkpoint", action="store_true", help="keep OUT/checkpoint after export")
    ap.add_argument("--threads", type=int, help="torch threads (0: torch's default)")
    return ap


def parse(argv: list[str] | None = None) -> tuple[TrainConfig, bool, bool]:
    given = vars(_parser().parse_args(argv))
    settings: dict[str, Any] = {"base": "smollm2-135m", **_RUN_OPTIONS}
    if "config" in given:
        settings.update(_load_yaml(Path(given.pop("config"))))
    settings.update(given)
    for required in ("task", "out"):
        if required not in settings:
            raise SystemExit(f"error: --{required} (or {required}: in --config) is required")
    resume, keep, threads = (settings.pop(k) for k in _RUN_OPTIONS)
    if threads:
        torch.set_num_threads(threads)
    for listed in ("lora_targets", "report_to"):
        if listed in settings:
            value = settings[listed]
            settings[listed] = (value,) if isinstance(value, str) else tuple(value)
    base = settings["base"]
    settings["base"] = str(prepare(base)) if "/" not in base else base
    if settings.get("decode"):
        settings["decode"] = str(decode_module(resolve_model(settings["decode"]), "cpu"))
    try:
        return msgspec.convert(settings, TrainConfig), bool(resume), bool(keep)
    except msgspec.ValidationError as err:
        raise SystemExit(f"error: {err}") from err


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = msgspec.yaml.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as err:
        raise SystemExit(f"error: --config {path}: {err}") from err
    if not isinstance(data, dict):
        raise SystemExit(f"error: --config {path}: a mapping of settings, not {type(data).__name__}")
    known = set(TrainConfig.__struct_fields__) | set(_RUN_OPTIONS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"error: --config {path}: unknown settings {unknown}; known: {sorted(known)}")
    return data


def main(argv: list[str] | None = None) -> None:
    config, resume, keep = parse(argv)
    world = join()
    try:
        trainer = train_and_export(config, resume, keep, world=world)
        steps, loss = trainer.step, trainer.losses[-1]
        del trainer  # its FSDP state holds the process group, which leave() is to destroy
    except (RuntimeError, ValueError) as err:
        raise SystemExit(str(err)) from err
    finally:
        leave(world)  # after a barrier: no rank tears the group down under another
    if world.main:
        seconds = json.loads((Path(config.out) / "sun_train.json").read_text())["train_seconds"]
        print(f"wrote {config.out} ({steps} steps, {seconds:.0f} s, final loss {loss:.3f})")
    if world.sharded:
        # the export is written and the group destroyed; the interpreter's own teardown with gloo's
        # threads still about aborted a rank once in CI ("terminate called without an active
        # exception", SIGABRT after a complete run): the process ends here instead
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
