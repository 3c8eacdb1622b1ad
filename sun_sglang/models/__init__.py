"""Real and tiny models that can be had offline (shared/MODELS.md), as plain transformers folders."""

from pathlib import Path

from sun_sglang.models.registry import MODELS, model_path, prepare

__all__ = ["MODELS", "model_path", "prepare", "resolve_model"]


def resolve_model(ref: str) -> str:
    """A checkpoint folder as given, or a named model prepared on first use."""
    if Path(ref).is_dir():
        return str(Path(ref).resolve())
    if ref in MODELS:
        return str(prepare(ref))
    raise FileNotFoundError(f"{ref!r} is neither a checkpoint folder nor a known model name")
