"""The compatibility check that guards the shared decode pool."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sun_sglang import compat


def _variant(src: Path, dst: Path, **config_changes: object) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((dst / "config.json").read_text())
    config.update(config_changes)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_same_architecture_fine_tune_is_accepted(tiny_base: Path, tiny_task: Path) -> None:
    compat.check_prefill_module(tiny_task, tiny_base)


@pytest.mark.parametrize(
    ("field", "change", "shown"),
    [
        ("num_hidden_layers", {"num_hidden_layers": 3}, "num_hidden_layers: 3 (prefill) vs 2 (decode)"),
        ("num_key_value_heads", {"num_key_value_heads": 4}, "num_key_value_heads: 4 (prefill) vs 2 (decode)"),
        ("head_dim", {"head_dim": 32}, "head_dim: 32 (prefill) vs 16 (decode)"),
        ("hidden_size", {"hidden_size": 128}, "hidden_size: 128 (prefill) vs 64 (decode)"),
        ("vocab_size", {"vocab_size": 50000}, "vocab_size: 50000 (prefill)"),
        ("rope", {"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}, "rope:"),
        ("architectures", {"architectures": ["MistralForCausalLM"]}, "architectures: ['MistralForCausalLM']"),
        ("dtype", {"dtype": "bfloat16"}, "dtype: 'bfloat16' (prefill) vs 'float32' (decode)"),
    ],
)
def test_mismatch_is_refused_naming_field_and_values(
    tiny_base: Path, tmp_path: Path, field: str, change: dict, shown: str
) -> None:
    bad = _variant(tiny_base, tmp_path / "bad", **change)
    with pytest.raises(compat.IncompatibleCheckpoint) as err:
        compat.check_prefill_module(bad, tiny_base)
    assert shown in str(err.value)
    assert str(bad) in str(err.value)


def test_pinned_dtype_overrides_checkpoint_dtype(tiny_base: Path, tmp_path: Path) -> None:
    bf16 = _variant(tiny_base, tmp_path / "bf16", dtype="bfloat16")
    compat.check_prefill_module(bf16, tiny_base, prefill_dtype="float32", decode_dtype="float32")


def test_other_tokenizer_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    other = _variant(tiny_base, tmp_path / "tok")
    data = json.loads((other / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    vocab["zzz-new-token"] = vocab.pop(next(iter(vocab)))
    (other / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(compat.IncompatibleCheckpoint, match="tokenizer:"):
        compat.check_prefill_module(other, tiny_base)


def test_not_a_checkpoint(tmp_path: Path, tiny_base: Path) -> None:
    with pytest.raises(compat.IncompatibleCheckpoint, match="no config.json"):
        compat.check_prefill_module(tmp_path, tiny_base)


def test_serving_dtype_is_explicit() -> None:
    assert compat.serving_dtype({"dtype": "float32"}) == "float32"  # SGLang's auto would say fp16
    assert compat.serving_dtype({"torch_dtype": "bfloat16"}) == "bfloat16"
    assert compat.serving_dtype({"dtype": "float32"}, "bf16") == "bfloat16"
    with pytest.raises(ValueError, match="unknown dtype"):
        compat.serving_dtype({}, "float8")


def test_launch_prefill_refuses_before_sglang_starts(tiny_base: Path, tmp_path: Path) -> None:
    bad = _variant(tiny_base, tmp_path / "bad", num_key_value_heads=4)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sun_sglang.launch",
            "prefill",
            "--task",
            "bad",
            "--model-path",
            str(bad),
            "--decode-model-path",
            str(tiny_base),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "num_key_value_heads: 4 (prefill) vs 2 (decode)" in out.stderr
    assert "sglang.launch_server" not in out.stderr  # never reached SGLang


def test_another_family_is_refused(tiny_base: Path, tiny_qwen2: Path) -> None:
    """A Qwen2 prefill module on a Llama decode module (or the reverse): refused before serving."""
    for prefill, decode in ((tiny_qwen2, tiny_base), (tiny_base, tiny_qwen2)):
        with pytest.raises(compat.IncompatibleCheckpoint):
            compat.check_prefill_module(prefill, decode)
    compat.check_prefill_module(tiny_qwen2, tiny_qwen2)
