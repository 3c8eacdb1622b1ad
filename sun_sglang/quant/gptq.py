"""Weight-only GPTQ of the decode module with llm-compressor, calibrated on task chats."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import msgspec
import torch
from transformers import AutoTokenizer

from sun_sglang import tasks
from sun_sglang.reference import load_model

_COPIED = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


class QuantConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base: str  # the decode module to quantize (a checkpoint folder)
    out: str  # gets packed/ and dequantized/
    bits: int = 4  # 4 or 8, integer, symmetric
    group_size: int = 64  # weights per scale along the input dimension; must divide every layer's
    calib_tasks: tuple[str, ...] = ("bb_2digit_addition",)  # built-in tasks or JSONL files
    n_calib: int = 128  # calibration chats (prompt + answer), from the tasks' training splits
    max_seq_len: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, not {self.bits}")

    @property
    def scheme(self) -> dict:
        weights = {"num_bits": self.bits, "type": "int", "symmetric": True, "strategy": "group"}
        return {"group_0": {"targets": ["Linear"], "weights": {**weights, "group_size": self.group_size}}}


def calibration_ids(config: QuantConfig, tokenizer) -> list[list[int]]:  # noqa: ANN001
    """Prompt + answer token ids of the first chats of each task's training split (the held-out
    split never calibrates)."""
    per_task = -(-config.n_calib // len(config.calib_tasks))
    out = []
    for task in config.calib_tasks:
        train, _ = tasks.split(tasks.load(task), config.seed, 200)
        for ex in train[:per_task]:
            out.append(
                (tasks.prompt_ids(tokenizer, ex) + tasks.answer_ids(tokenizer, ex))[: config.max_seq_len]
            )
    return out[: config.n_calib]


def quantize(config: QuantConfig) -> dict:
    """Run GPTQ; write packed/ and dequantized/ and quant.json (settings, time) in both."""
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier

    tokenizer = AutoTokenizer.from_pretrained(config.base)
    ids = calibration_ids(config, tokenizer)
    data = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]})
    model = load_model(config.base, "float32")
    started = time.perf_counter()
    recipe = GPTQModifier(config_groups=config.scheme, ignore=["lm_head"])
    oneshot(
        model=model,
        dataset=data,
        recipe=recipe,
        num_calibration_samples=len(ids),
        max_seq_length=config.max_seq_len,
    )
    seconds = time.perf_counter() - started
    out = Path(config.out)
    dense = dequantized(model, config.base)  # before packing: packing replaces the weights
    record = {
        "config": msgspec.to_builtins(config),
        "quantize_seconds": round(seconds, 1),
        "n_calib": len(ids),
    }
    folders = (out / "dequantized", out / "packed")
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    dense.save_pretrained(str(folders[0]))
    model.save_pretrained(str(folders[1]), save_compressed=True)
    for folder in folders:
        for name in _COPIED:
            if (Path(config.base) / name).is_file():
                shutil.copy2(Path(config.base) / name, folder / name)
        (folder / "quant.json").write_text(json.dumps(record, indent=1))
    return record


@torch.no_grad()
def dequantized(model, base: str):  # noqa: ANN001, ANN201
    """A plain copy of the base whose quantized Linear weights are replaced by their dequantized
    values (fake-quantized with the module's own scales: what the low-bit kernels compute)."""
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize

    plain = load_model(base, "float32")
    targets = dict(plain.named_modules())
    for name, module in model.named_modules():
        scheme = getattr(module, "quantization_scheme", None)
        if scheme is None or scheme.weights is None:
            continue
        zero = getattr(module, "weight_zero_point", None)
        weight = fake_quantize(module.weight, module.weight_scale, zero, scheme.weights)
        targets[name].weight.copy_(weight)
    return plain
