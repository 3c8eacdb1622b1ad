"""Is a prefill module's checkpoint servable against the shared decode module?

SGLang checks only page size, the KV-dtype string and the parallel layout between a prefill and a
decode server. Everything else (layer count, KV heads, head dim, dtype, vocabulary...) passes
silently and decodes garbage, overwrites other requests' KV, or kills the shared decode server
(shared/SUN.md section 3). This check runs before a prefill module joins; a mismatch never
reaches SGLang.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# config.json fields that fix the KV layout, the positions and the token space.
_FIELDS = (
    "architectures",
    "model_type",
    "num_hidden_layers",
    "num_key_value_heads",
    "num_attention_heads",
    "head_dim",
    "hidden_size",
    "vocab_size",
    "rope",
    "quantized_kv",
)

_DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


class IncompatibleCheckpoint(ValueError):
    """A prefill module that must not join the decode pool."""


@dataclass(frozen=True)
class Mismatch:
    field: str
    prefill: Any
    decode: Any

    def __str__(self) -> str:
        return f"{self.field}: {self.prefill!r} (prefill) vs {self.decode!r} (decode)"


def read_config(path: str | Path) -> dict[str, Any]:
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise IncompatibleCheckpoint(f"{path}: no config.json (not a transformers checkpoint)")
    return json.loads(config_file.read_text())


def checkpoint_dtype(config: dict[str, Any]) -> str:
    raw = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return _DTYPE_NAMES.get(raw.removeprefix("torch."), raw)


def serving_dtype(config: dict[str, Any], requested: str = "auto") -> str:
    """The dtype a server will run. 'auto' is resolved here, explicitly, from the checkpoint:
    SGLang's own 'auto' maps float32 checkpoints to float16 and AWQ ones to float16, which is how
    two servers that both say 'auto' come to disagree."""
    if requested != "auto":
        if requested not in _DTYPE_NAMES:
            raise ValueError(f"unknown dtype {requested!r}; use one of {sorted(set(_DTYPE_NAMES))}")
        return _DTYPE_NAMES[requested]
    return checkpoint_dtype(config)


def _rope(config: dict[str, Any]) -> dict[str, Any]:
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    if "rope_theta" in config:
        rope.setdefault("rope_theta", config["rope_theta"])
    return rope


def _quantized_kv(config: dict[str, Any]) -> Any:
    # A KV-cache quantization scheme changes the bytes written per token.
    quant = config.get("quantization_config") or {}
    return quant.get("kv_cache_scheme")


def tokenizer_fingerprint(path: str | Path) -> str:
    """sha256 over the vocabulary and added tokens: equal iff token ids mean the same text."""
    tok_file = Path(path) / "tokenizer.json"
    if not tok_file.is_file():
        raise IncompatibleCheckpoint(f"{path}: no tokenizer.json (a fast tokenizer is required)")
    data = json.loads(tok_file.read_text())
    canon = {
        "vocab": data.get("model", {}).get("vocab"),
        "added": sorted((t["id"], t["content"]) for t in data.get("added_tokens", [])),
    }
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()[:16]


def describe(path: str | Path, dtype: str = "auto") -> dict[str, Any]:
    """The fields a prefill module and the decode module must share."""
    config = read_config(path)
    text = config.get("text_config") or config  # multimodal wrappers keep the LM config inside
    fields = {name: text.get(name) for name in _FIELDS}
    fields["architectures"] = config.get("architectures")
    if fields["head_dim"] is None and text.get("num_attention_heads"):
        fields["head_dim"] = text["hidden_size"] // text["num_attention_heads"]
    fields["rope"] = _rope(text)
    fields["quantized_kv"] = _quantized_kv(config)
    fields["dtype"] = serving_dtype(config, dtype)
    fields["tokenizer"] = tokenizer_fingerprint(path)
    return fields


def mismatches(prefill: dict[str, Any], decode: dict[str, Any]) -> list[Mismatch]:
    return [Mismatch(k, prefill[k], decode[k]) for k in decode if prefill.get(k) != decode[k]]


def check_prefill_module(
    prefill_path: str | Path,
    decode_path: str | Path,
    prefill_dtype: str = "auto",
    decode_dtype: str = "auto",
) -> None:
    """Raise IncompatibleCheckpoint naming every mismatched field and both values."""
    found = mismatches(describe(prefill_path, prefill_dtype), describe(decode_path, decode_dtype))
    if found:
        detail = "; ".join(str(m) for m in found)
        raise IncompatibleCheckpoint(
            f"prefill module {prefill_path} does not match decode module {decode_path}: {detail}"
        )


_LAYER_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


def _module_dims(config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(in, out) features of each LoRA-targetable linear layer of a Llama-style block."""
    text = config.get("text_config") or config
    hidden, heads = text["hidden_size"], text["num_attention_heads"]
    head_dim = text.get("head_dim") or hidden // heads
    q, kv, mlp = (
        heads * head_dim,
        text.get("num_key_value_heads", heads) * head_dim,
        text["intermediate_size"],
    )
    return {
        "q_proj": (hidden, q),
        "k_proj": (hidden, kv),
        "v_proj": (hidden, kv),
        "o_proj": (q, hidden),
        "gate_proj": (hidden, mlp),
        "up_proj": (hidden, mlp),
        "down_proj": (mlp, hidden),
    }


def check_adapter(
    adapter_path: str | Path,
    base_path: str | Path,
    max_rank: int | None = None,
    served_targets: Sequence[str] | None = None,
) -> None:
    """A LoRA prefill module against the base it must ride on (the decode module) and the
    multi-LoRA prefill servers that will hold it: every weight's shape fits a linear layer of the
    base, its rank is within the servers' max rank, its target modules among theirs. Raises
    IncompatibleCheckpoint naming what does not fit."""
    from safetensors import safe_open

    from sun_sglang import adapters

    try:
        info = adapters.read(adapter_path)
    except adapters.BadAdapter as err:
        raise IncompatibleCheckpoint(str(err)) from err
    config = read_config(base_path)
    problems = []
    if max_rank is not None and info.rank > max_rank:
        problems.append(f"rank {info.rank} > the prefill servers' max_lora_rank {max_rank}")
    if served_targets is not None and "all" not in served_targets:
        extra = sorted(set(info.targets) - set(served_targets))
        if extra:
            problems.append(f"target modules {extra} not among the servers' {sorted(served_targets)}")
    dims, layers = _module_dims(config), (config.get("text_config") or config)["num_hidden_layers"]
    with safe_open(str(info.path / "adapter_model.safetensors"), "pt") as weights:
        for key in weights.keys():
            found = _LAYER_KEY.search(key)
            if not found or found.group(2) not in dims:
                problems.append(f"weight {key} is not a LoRA weight of a linear layer of the base")
                break
            layer, module, kind = int(found.group(1)), found.group(2), found.group(3)
            d_in, d_out = dims[module]
            want = [info.rank, d_in] if kind == "A" else [d_out, info.rank]
            shape = list(weights.get_slice(key).get_shape())
            if layer >= layers or shape != want:
                problems.append(
                    f"{key}: shape {shape} (layer {layer}); the base needs {want} ({layers} layers)"
                )
                break
    if problems:
        raise IncompatibleCheckpoint(
            f"adapter {adapter_path} does not fit base {base_path}: {'; '.join(problems)}"
        )
