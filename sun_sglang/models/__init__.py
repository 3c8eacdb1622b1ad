"""Real and tiny models that can be had offline (shared/MODELS.md), as plain transformers folders."""

from sun_sglang.models.registry import MODELS, model_path, prepare

__all__ = ["MODELS", "model_path", "prepare"]
