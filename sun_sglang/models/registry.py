"""Named models, prepared once into the cache and found again by name."""

from __future__ import annotations

import shutil
import sys
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
}


def register(name: str, build: Callable[[Path], None]) -> None:
    """A named model built from others (trained, quantized): by the modules above this one, so
    that models depend on nothing of theirs (sun_sglang/demo_models.py)."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = build


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
    print(f"preparing model {name!r} (once) into {path}", file=sys.stderr, flush=True)
    MODELS[name](staging)
    (staging / _DONE).touch()
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)
    return path
