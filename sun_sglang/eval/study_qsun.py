"""QSUN in the study: the base quantized once per bit width, a prefill module trained against it
(QSUN) beside the SUN prefill module put in front of it without retraining."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import msgspec

from sun_sglang import tasks
from sun_sglang.eval import evaluate_offline
from sun_sglang.eval.study_cache import cached, run_settings, train
from sun_sglang.quant.gptq import QuantConfig
from sun_sglang.train.config import TrainConfig

METHOD_NAMES = {"gptq": "GPTQ", "awq": "AWQ", "awq-gptq": "AWQ scaling + GPTQ"}  # quant.gptq.METHODS


class Scheme(msgspec.Struct, frozen=True):
    """A quantized decoder setting, named like w4-gptq-g64 (bits, method, group size)."""

    bits: int
    method: str
    group_size: int

    @classmethod
    def parse(cls, name: str) -> Scheme:
        found = re.fullmatch(r"w(\d+)-([a-z-]+)-g(\d+)", name)
        if not found or found[2] not in METHOD_NAMES:
            raise ValueError(f"QSUN scheme {name!r}: want w<bits>-<{'|'.join(METHOD_NAMES)}>-g<group size>")
        return cls(int(found[1]), found[2], int(found[3]))

    @property
    def name(self) -> str:
        return f"w{self.bits}-{self.method}-g{self.group_size}"

    @property
    def label(self) -> str:
        return f"W{self.bits} ({METHOD_NAMES[self.method]}, group {self.group_size})"


def quant_config(base: str, work: Path, scheme: Scheme, calib_tasks: list[str]) -> QuantConfig:
    """The quantization of the base with `scheme`, calibrated on the tasks' training splits."""
    return QuantConfig(
        base=base,
        out=str(work / f"quant-{scheme.name}"),
        bits=scheme.bits,
        method=scheme.method,
        group_size=scheme.group_size,
        calib_tasks=tuple(calib_tasks),
    )


def quantized_base(base: str, work: Path, scheme: Scheme, calib_tasks: list[str]) -> str:
    """The base quantized with `scheme`, once per setting; its dequantized checkpoint (what the
    QSUN decode servers compute)."""
    from sun_sglang.quant.gptq import quantize

    config = quant_config(base, work, scheme, calib_tasks)
    record_file = Path(config.out) / "dequantized" / "quant.json"
    wanted = _without_out(json.loads(msgspec.json.encode(config)))  # as quant.json: tuples are lists
    if not (record_file.is_file() and _without_out(json.loads(record_file.read_text())["config"]) == wanted):
        quantize(config)
    return str(Path(config.out) / "dequantized")


def _without_out(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != "out"}


class _Setup(msgspec.Struct, frozen=True):
    common: dict  # the task's TrainConfig fields
    sun: dict  # the SUN prefill module's training record
    decode: str  # the dequantized checkpoint
    quant: dict  # its quant.json
    test: list


def _setup(task: str, base: str, work: Path, args: argparse.Namespace, scheme: Scheme) -> _Setup:
    """What both QSUN measurements start from: the quantized decoder, the SUN prefill module, the
    held-out split."""
    decode = quantized_base(base, work, scheme, args.tasks.split(","))
    common = run_settings(task, base, args)
    sun = train(TrainConfig(out=str(work / task / "sun"), mode="sun", **common))
    quant = json.loads((Path(decode) / "quant.json").read_text())
    _, test = tasks.train_test(task, args.seed, args.n_test)
    return _Setup(common, sun, decode, quant, list(test))


def qsun_task(task: str, base: str, work: Path, args: argparse.Namespace, scheme: Scheme) -> dict:
    setup = _setup(task, base, work, args, scheme)
    decode, test = setup.decode, setup.test
    qsun_dir = work / task / f"qsun-{scheme.name}"
    qsun = train(TrainConfig(out=str(qsun_dir), mode="sun", decode=decode, **setup.common))
    key = {"sun": setup.sun, "qsun": qsun, "quant": setup.quant["config"]}
    configs = {"no retraining": str(work / task / "sun"), "QSUN": str(qsun_dir)}
    accuracy = {
        name: cached(
            qsun_dir.parent / f"accuracy-{qsun_dir.name}.json",
            key,
            name,
            lambda p=prefill: evaluate_offline(p, decode, test),
        )
        for name, prefill in configs.items()
    }
    print(f"{task}: {scheme.name} {accuracy}", flush=True)
    return {"task": task, "bits": scheme.bits, "weights": scheme.label, "accuracy": accuracy}


def qsun_table(rows: list[dict], results: list[dict]) -> str:
    sun = {r["task"]: r["accuracy"]["SUN"] for r in results}
    lines = [
        "| task | decoder weights | SUN (float32 decoder) | SUN prefill + quantized decoder, no retraining"
        " | QSUN (trained against it) | QSUN - SUN | QSUN - no retraining |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, q, n = sun[r["task"]], r["accuracy"]["QSUN"], r["accuracy"]["no retraining"]
        lines.append(
            f"| {r['task']} | {r['weights']} | {s * 100:.1f} | {n * 100:.1f}"
            f" | {q * 100:.1f} | {(q - s) * 100:+.1f} | {(q - n) * 100:+.1f} |"
        )
    return "\n".join(lines) + "\n"


def decoder_row(task: str, base: str, work: Path, args: argparse.Namespace, scheme: Scheme) -> dict:
    """One quantized decoder behind the SUN prefill module, without retraining: a cheap comparison
    of schemes (bits, method, group size) on one task."""
    setup = _setup(task, base, work, args, scheme)
    accuracy = cached(
        work / task / f"accuracy-decoder-{scheme.name}.json",
        {"sun": setup.sun, "quant": _without_out(setup.quant["config"])},
        "no retraining",
        lambda: evaluate_offline(str(work / task / "sun"), setup.decode, setup.test),
    )
    print(f"{task}: decoder {scheme.name} {accuracy}", flush=True)
    return {
        "task": task,
        "weights": scheme.label,
        "accuracy": accuracy,
        "seconds": setup.quant["quantize_seconds"],
    }


def decoders_table(rows: list[dict], results: list[dict]) -> str:
    sun = {r["task"]: r["accuracy"]["SUN"] for r in results}
    lines = [
        "| task | decoder weights | SUN prefill + this decoder, no retraining | - SUN (float32 decoder) "
        "| quantization time |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        a, s = r["accuracy"], sun[r["task"]]
        lines.append(
            f"| {r['task']} | {r['weights']} | {a * 100:.1f} | {(a - s) * 100:+.1f} | {r['seconds']:.0f} s |"
        )
    return "\n".join(lines) + "\n"
