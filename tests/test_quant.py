"""QSUN on the tiny model: GPTQ into packed and dequantized checkpoints, which agree; the
compatibility check with quantized decode modules; the launcher's choice of checkpoint; training
a prefill module against the quantized decoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pytest
import torch

from sun_sglang import compat
from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.plan import plan
from sun_sglang.quant import decode_module
from sun_sglang.quant.gptq import QuantConfig, quantize
from sun_sglang.reference import load_model
from sun_sglang.train.config import TrainConfig
from sun_sglang.train.loop import Trainer, decode_module_unchanged, train_and_export


@pytest.fixture(scope="module", params=[4, 8])
def quantized(
    request: pytest.FixtureRequest, tiny_base: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple:
    out = tmp_path_factory.mktemp(f"w{request.param}")
    quantize(QuantConfig(base=str(tiny_base), out=str(out), bits=request.param, group_size=32, n_calib=16))
    return request.param, out


def test_packed_checkpoint_loads_in_transformers_and_equals_the_dequantized_one(
    quantized: tuple, tiny_base: Path
) -> None:
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    bits, out = quantized
    config = json.loads((out / "packed" / "config.json").read_text())["quantization_config"]
    assert (
        config["format"] == "pack-quantized"
        and config["config_groups"]["group_0"]["weights"]["num_bits"] == bits
    )
    packed = AutoModelForCausalLM.from_pretrained(
        out / "packed", dtype=torch.float32, quantization_config=CompressedTensorsConfig(run_compressed=False)
    ).state_dict()
    dense, base = load_model(str(out / "dequantized")).state_dict(), load_model(str(tiny_base)).state_dict()
    assert dense.keys() == base.keys()
    assert all(torch.equal(dense[k], packed[k]) for k in dense)  # what the low-bit kernels compute
    weight = dense["model.layers.0.mlp.down_proj.weight"]
    groups = weight.reshape(weight.shape[0], -1, 32)
    most = max(
        len(torch.unique(groups[i, j])) for i in range(groups.shape[0]) for j in range(groups.shape[1])
    )
    assert 2 < most <= 2**bits  # every group of 32 weights holds at most 2^bits values
    assert not torch.equal(weight, base["model.layers.0.mlp.down_proj.weight"])
    assert torch.equal(dense["model.embed_tokens.weight"], base["model.embed_tokens.weight"])  # not a Linear
    assert json.loads((out / "dequantized" / "quant.json").read_text())["config"]["bits"] == bits


def test_quantized_decode_modules_pass_or_fail_the_compatibility_check(
    quantized: tuple, tiny_base: Path, tmp_path: Path
) -> None:
    _, out = quantized
    compat.check_prefill_module(tiny_base, out / "dequantized")
    compat.check_prefill_module(tiny_base, out / "packed")  # float32 declared, float32 prefill
    # A quantized checkpoint that declares float16 (as AWQ ones do) against float32 prefill modules
    fp16 = tmp_path / "packed-fp16"
    shutil.copytree(out / "packed", fp16)
    config = json.loads((fp16 / "config.json").read_text())
    (fp16 / "config.json").write_text(json.dumps({**config, "dtype": "float16"}))
    with pytest.raises(
        compat.IncompatibleCheckpoint, match=r"dtype: 'float32' \(prefill\) vs 'float16' \(decode\)"
    ):
        compat.check_prefill_module(tiny_base, fp16)


def test_the_launcher_serves_packed_on_gpu_and_dequantized_on_cpu(
    quantized: tuple, tiny_base: Path, tmp_path: Path
) -> None:
    _, out = quantized
    assert decode_module(out, "cuda") == out / "packed" and decode_module(out, "cpu") == out / "dequantized"
    assert decode_module(tiny_base, "cpu") == tiny_base
    (tmp_path / "c.yaml").write_text(f"base: {out}\ntasks: {{math: {{model_path: {tiny_base}}}}}\n")
    cfg = cluster_config.load(tmp_path / "c.yaml")
    for device, folder in (("cpu", "dequantized"), ("cuda", "packed")):
        decode = plan(cfg, device).decode[0]
        assert decode.model_path == str(out / folder)


def test_qsun_training_runs_against_the_quantized_decoder(
    quantized: tuple, tiny_base: Path, tmp_path: Path
) -> None:
    _, out = quantized
    config = TrainConfig(
        base=str(tiny_base),
        task="bb_2digit_addition",
        out=str(tmp_path / "qsun"),
        steps=2,
        batch_size=4,
        n_test=100,
        lr=1e-3,
        decode=str(out / "dequantized"),
    )
    trainer = train_and_export(config, progress=False)
    assert decode_module_unchanged(trainer.decode, str(out / "dequantized"))  # the quantized weights
    assert not decode_module_unchanged(trainer.decode, str(tiny_base))
    compat.check_prefill_module(tmp_path / "qsun", out / "dequantized")
    with pytest.raises(ValueError, match="modes sun and lora only"):
        Trainer(msgspec.structs.replace(config, mode="full"))


def test_awq_folds_its_scales_into_the_norms_and_both_checkpoints_agree(
    tiny_base: Path, tmp_path: Path
) -> None:
    """AWQ rescales input channels: the norms before q/k/v and gate/up take the scales and the
    projections their inverse, so the dequantized checkpoint must carry the rescaled norms too (a
    base copy with only the Linear weights replaced would compute something else)."""
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    config = QuantConfig(
        base=str(tiny_base), out=str(tmp_path), bits=4, group_size=32, n_calib=16, method="awq"
    )
    quantize(config)
    packed = AutoModelForCausalLM.from_pretrained(
        tmp_path / "packed",
        dtype=torch.float32,
        quantization_config=CompressedTensorsConfig(run_compressed=False),
    )
    dense = load_model(str(tmp_path / "dequantized"))
    base = load_model(str(tiny_base))
    packed_weights, dense_weights = packed.state_dict(), dense.state_dict()
    assert all(torch.equal(dense_weights[k], packed_weights[k]) for k in dense_weights)
    norm = "model.layers.0.input_layernorm.weight"
    assert not torch.equal(dense_weights[norm], base.state_dict()[norm])
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        want, got = base(ids).logits, dense(ids).logits
    assert (got - want).norm() < 0.25 * want.norm()  # the same model, up to 4-bit rounding
    assert json.loads((tmp_path / "dequantized" / "quant.json").read_text())["config"]["method"] == "awq"
    with pytest.raises(ValueError, match="method must be one of"):
        QuantConfig(base="", out="", method="hqq")
