"""Weight-only quantization of the decode module with llm-compressor (GPTQ, AWQ, or AWQ's scaling
then GPTQ), calibrated on task chats."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import msgspec
import torch
from transformers import AutoTokenizer

from sun_sglang import tasks
from sun_sglang.reference import load_model

_COPIED = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


# gptq: GPTQ (static activation order); awq: AWQ's per-channel scaling (folded into the norms and
# the preceding projections), then round-to-nearest; awq-gptq: AWQ's scaling, then GPTQ.
METHODS = ("gptq", "awq", "awq-gptq")


class QuantConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base: str  # the decode module to quantize (a checkpoint folder)
    out: str  # gets packed/ and dequantized/
    bits: int = 4  # 4 or 8, integer, symmetric
    group_size: int = 64  # weights per scale along the input dimension; must divide every layer's
    calib_tasks: tuple[str, ...] = ("bb_2digit_addition",)  # built-in tasks or JSONL files
    n_calib: int = 128  # calibration chats (prompt + answer), from the tasks' training splits
    max_seq_len: int = 256
    seed: int = 0
    method: str = "gptq"  # one of METHODS

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, not {self.bits}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")

    @property
    def scheme(self) -> dict:
        weights = {"num_bits": self.bits, "type": "int", "symmetric": True, "strategy": "group"}
        return {"group_0": {"targets": ["Linear"], "weights": {**weights, "group_size": self.group_size}}}

    def recipe(self) -> list:
        from llmcompressor.modifiers.gptq import GPTQModifier
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform.awq import AWQModifier

        quantizer = QuantizationModifier if self.method == "awq" else GPTQModifier
        scaling = [AWQModifier()] if self.method.startswith("awq") else []
        return [*scaling, quantizer(config_groups=self.scheme, ignore=["lm_head"])]


def calibration_ids(config: QuantConfig, tokenizer) -> list[list[int]]:  # noqa: ANN001
    """Prompt + answer token ids of the first chats of each task's training split (the held-out
    split never calibrates)."""
    per_task = -(-config.n_calib // len(config.calib_tasks))
    out = []
    for task in config.calib_tasks:
        train, _ = tasks.train_test(task, config.seed, 200)
        for ex in train[:per_task]:
            out.append(
                (tasks.prompt_ids(tokenizer, ex) + tasks.answer_ids(tokenizer, ex))[: config.max_seq_len]
            )
    return out[: config.n_calib]


def quantize(config: QuantConfig) -> dict:
    """Run GPTQ; write packed/ and dequantized/ and quant.json (settings, time) in both."""
    from datasets import Dataset
    from llmcompressor import oneshot

    tokenizer = AutoTokenizer.from_pretrained(config.base)
    ids = calibration_ids(config, tokenizer)
    data = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]})
    model = load_model(config.base, "float32")
    started = time.perf_counter()
    with _no_pinning_without_cuda():
        oneshot(
            model=model,
            dataset=data,
            recipe=config.recipe(),
            num_calibration_samples=len(ids),
            max_seq_length=config.max_seq_len,
        )
    seconds = time.perf_counter() - started
    out = Path(config.out)
    dense = dequantized(model, config.base)  # before packing: packing replaces the weights
    settings = {k: v for k, v in msgspec.to_builtins(config).items() if k != "out"}  # out may be staging
    record = {
        "config": settings,
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


@contextlib.contextmanager
def _no_pinning_without_cuda() -> Iterator[None]:
    """AWQ pins its cached activations for faster host-to-device copies, which raises where there is
    no accelerator (llm-compressor 0.13); without CUDA there is nothing to copy to, so skip it."""
    if torch.cuda.is_available():
        yield
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    with mock.patch.object(IntermediatesCache, "pin_memory", lambda *args, **kwargs: None):
        yield


@torch.no_grad()
def dequantized(model, base: str):  # noqa: ANN001, ANN201
    """A plain copy of the quantized model: every parameter as calibration left it (AWQ rescales
    the norms), the quantized Linear weights replaced by their dequantized values (fake-quantized
    with the module's own scales: what the low-bit kernels compute)."""
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize

    plain = load_model(base, "float32")
    calibrated = dict(model.named_parameters())
    for name, param in plain.named_parameters():
        param.copy_(calibrated[name])
    targets = dict(plain.named_modules())
    for name, module in model.named_modules():
        scheme = getattr(module, "quantization_scheme", None)
        if scheme is None or scheme.weights is None:
            continue
        zero = getattr(module, "weight_zero_point", None)
        weight = fake_quantize(module.weight, module.weight_scale, zero, scheme.weights)
        targets[name].weight.copy_(weight)
    return plain
