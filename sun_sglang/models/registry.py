"""Named models, prepared once into the cache and found again by name."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from sun_sglang.models import qwen25, smollm2, tiny
from sun_sglang.paths import models_dir

_DONE = ".sun-prepared"


def _smollm2(out: Path) -> None:
    smollm2.convert(out)


def _tiny_qwen2(out: Path) -> None:
    tiny.build_tiny_qwen2(out, tokenizer_dir=prepare("qwen2.5-coder-0.5b"))


def _qwen25_coder(out: Path) -> None:
    qwen25.convert(out)


def _tiny(out: Path) -> None:
    tiny.build_tiny(out, tokenizer_dir=prepare("smollm2-135m"))


def _variant(base: str, seed: int, scale: float) -> Callable[[Path], None]:
    return lambda out: tiny.build_variant(out, prepare(base), seed=seed, scale=scale)


def _sun_trained(
    base: str, task: str, steps: int, mode: str = "sun", lr: float = 1e-4, decode: str | None = None
) -> Callable[[Path], None]:
    """A real SUN prefill module (mode lora: a LoRA adapter on the base, rank 16): `steps` of SUN
    training on a built-in task, seed 0; against `decode` (a QSUN model) if given, else the base."""

    def build(out: Path) -> None:
        from sun_sglang.quant import decode_module
        from sun_sglang.train.loop import TrainConfig, train_and_export

        frozen = str(decode_module(prepare(decode), "cpu")) if decode else None
        config = TrainConfig(
            base=str(prepare(base)),
            task=task,
            out=str(out),
            steps=steps,
            save_every=10**9,
            mode=mode,
            lr=lr,
            decode=frozen,
        )
        train_and_export(config, progress=False)

    return build


def _quantized(base: str, bits: int) -> Callable[[Path], None]:
    """A QSUN decode module: weight-only GPTQ (group 64, 64 addition chats), packed/ + dequantized/."""

    def build(out: Path) -> None:
        from sun_sglang.quant.gptq import QuantConfig, quantize

        quantize(QuantConfig(base=str(prepare(base)), out=str(out), bits=bits, group_size=64, n_calib=64))

    return build


MODELS: dict[str, Callable[[Path], None]] = {
    "smollm2-135m": _smollm2,
    "tiny-llama": _tiny,
    # The second family (Qwen2: biased QKV, untied head, a template with tools): ~1 min, 2 GB.
    "qwen2.5-coder-0.5b": _qwen25_coder,
    "tiny-qwen2": _tiny_qwen2,
    "qwen2.5-coder-0.5b-variant-a": _variant("qwen2.5-coder-0.5b", seed=1, scale=0.02),
    # Distinct-weight stand-ins for two task models (plumbing and serving tests).
    "smollm2-135m-variant-a": _variant("smollm2-135m", seed=1, scale=0.05),
    "smollm2-135m-variant-b": _variant("smollm2-135m", seed=2, scale=0.05),
    "tiny-llama-variant-a": _variant("tiny-llama", seed=1, scale=0.2),
    "tiny-llama-variant-b": _variant("tiny-llama", seed=2, scale=0.2),
    # Trained task models for the demo and the serving tests (about a minute each to build).
    "smollm2-135m-sun-addition": _sun_trained("smollm2-135m", "bb_2digit_addition", steps=30),
    # LoRA prefill modules (peft adapter folders) for multi-LoRA prefill pools.
    "smollm2-135m-sun-addition-lora": _sun_trained(
        "smollm2-135m", "bb_2digit_addition", steps=30, mode="lora", lr=1e-3
    ),
    "smollm2-135m-sun-sports-lora": _sun_trained(
        "smollm2-135m", "bb_sports_understanding", steps=30, mode="lora", lr=1e-3
    ),
    # QSUN: the base quantized to 4 bits (about two minutes), and a prefill module trained against it.
    "smollm2-135m-w4": _quantized("smollm2-135m", bits=4),
    "smollm2-135m-qsun-addition": _sun_trained(
        "smollm2-135m", "bb_2digit_addition", steps=30, decode="smollm2-135m-w4"
    ),
}


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")


def model_path(name: str) -> Path:
    """The folder of a prepared model; raises FileNotFoundError if it was never prepared."""
    _check_name(name)
    path = models_dir() / name
    if not (path / _DONE).exists():
        raise FileNotFoundError(
            f"model {name!r} is not prepared; run: python -m sun_sglang.models prepare {name}"
        )
    return path


def prepare(name: str) -> Path:
    """Build the model into the cache unless already there (atomic: build aside, then rename)."""
    _check_name(name)
    path = models_dir() / name
    if (path / _DONE).exists():
        return path
    staging = path.with_name(f".{name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    MODELS[name](staging)
    (staging / _DONE).touch()
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)
    return path
