"""The study's configurations, and its cache: trained models and accuracies kept under its work
folder, reused when the settings they were made with match (a rerun re-evaluates nothing it has
already measured)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import msgspec

from sun_sglang.train.config import TrainConfig
from sun_sglang.train.loop import train_and_export

CONFIGS = {  # name -> (prefill module, decode module)
    "base": ("base", "base"),
    "full FT": ("full", "full"),
    "naive": ("full", "base"),
    "SUN": ("sun", "base"),
    "LoRA-SUN": ("lora", "base"),
}
MODES = ("full", "sun", "lora")


def run_settings(task: str, base: str, args: argparse.Namespace, seed: int | None = None) -> dict:
    """The TrainConfig fields every study run of `task` shares (seed: the study's unless given)."""
    return dict(
        base=base,
        task=task,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed if seed is None else seed,
        n_test=args.n_test,
        save_every=max(10, args.steps // 4),
    )


def settings(config: dict) -> dict:
    """The settings a trained model is reused for: LoRA's only count in mode lora."""
    config = json.loads(json.dumps(config))
    lora = config["mode"] == "lora"
    return {
        k: v
        for k, v in config.items()
        if (lora or not k.startswith("lora_")) and not (k == "decode" and v is None)
    }


def train(config: TrainConfig) -> dict:
    """Train unless a finished model with the same settings is there; its training record."""
    record_file = Path(config.out) / "sun_train.json"
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        if settings(record["config"]) == settings(msgspec.to_builtins(config)):
            return record
    train_and_export(config, resume=True)
    return json.loads(record_file.read_text())


def cached(cache_file: Path, key: dict, name: str, measure: Callable) -> float:
    """An accuracy kept beside the models, keyed by the training records it was measured on."""
    key_text = json.dumps(key, sort_keys=True)
    kept = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    accuracy = kept.get("accuracy", {}) if kept.get("key") == key_text else {}
    if name not in accuracy:
        accuracy[name] = measure().accuracy
        cache_file.write_text(json.dumps({"key": key_text, "accuracy": accuracy}))
    return accuracy[name]
