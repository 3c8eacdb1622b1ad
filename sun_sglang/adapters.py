"""LoRA prefill modules: a task's prefill module as a peft adapter on the base (the decode module).

The adapter changes only the prefill: served, SGLang applies it on the prefill server (multi-LoRA),
and the shared decode servers run the plain base. Offline, the SUN reference runs the adapter
merged into the base's weights as the prefill module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel

# Every linear layer of a Llama-style block; SGLang's multi-LoRA supports all of them.
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_CONFIG = "adapter_config.json"
_WEIGHTS = "adapter_model.safetensors"


class BadAdapter(ValueError):
    """An adapter folder that cannot serve as a prefill module here."""


@dataclass(frozen=True)
class AdapterInfo:
    path: Path
    rank: int
    alpha: float
    targets: tuple[str, ...]
    base: str  # base_model_name_or_path as peft recorded it

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / _CONFIG).is_file()


def read(path: str | Path) -> AdapterInfo:
    """The adapter's settings; BadAdapter if it is not a plain LoRA adapter that SGLang serves."""
    folder = Path(path)
    if not (folder / _CONFIG).is_file():
        raise BadAdapter(f"{path}: no {_CONFIG} (not a peft adapter)")
    if not (folder / _WEIGHTS).is_file():
        raise BadAdapter(f"{path}: no {_WEIGHTS}")
    config = json.loads((folder / _CONFIG).read_text())
    if config.get("peft_type") != "LORA":
        raise BadAdapter(f"{path}: peft_type {config.get('peft_type')!r}, not LORA")
    if config.get("modules_to_save") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise BadAdapter(f"{path}: modules_to_save / per-module ranks are not servable as a prefill module")
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else targets
    return AdapterInfo(
        path=folder,
        rank=int(config["r"]),
        alpha=float(config["lora_alpha"]),
        targets=tuple(sorted(targets)),
        base=str(config.get("base_model_name_or_path") or ""),
    )


def wrap(model: PreTrainedModel, rank: int, alpha: float, targets: tuple[str, ...]) -> PreTrainedModel:
    """The model with a fresh, trainable LoRA adapter (B = 0: starts equal to the model)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0)
    return get_peft_model(model, config)


def load_weights(model: PreTrainedModel, path: str | Path) -> None:
    """Put a saved adapter's weights into a wrapped model (resuming training)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model, load_file(str(Path(path) / _WEIGHTS)))
    if result.unexpected_keys:
        raise BadAdapter(f"{path}: weights the model has no place for: {result.unexpected_keys[:3]}")


@torch.no_grad()
def merged(base: PreTrainedModel, path: str | Path) -> PreTrainedModel:
    """The prefill module an adapter makes: its weights merged into (a copy of) the base model."""
    import copy

    from peft import PeftModel

    read(path)
    return PeftModel.from_pretrained(copy.deepcopy(base), str(path)).merge_and_unload().eval()


def save_random(
    base: str | Path, out: str | Path, rank: int, targets: tuple[str, ...], seed: int, std: float
) -> Path:
    """A LoRA adapter with random weights (B too, so that it changes the model): for tests and
    benchmarks, where what an adapter does matters less than that it does something, or its cost."""
    from sun_sglang.reference import load_model

    torch.manual_seed(seed)
    model = wrap(load_model(str(base)), rank, 2.0 * rank, targets)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=std)
    model.save_pretrained(str(out))
    return Path(out)
