"""The multi-LoRA decode cost: the base's step, a fixed fraction, and a cost per distinct adapter."""

from __future__ import annotations

import pytest

from sun_sglang.sim.costs import GPUS, MODELS, Roofline
from sun_sglang.sim.lora import LoraDecodeCost

BASE = Roofline(GPUS["H100"], MODELS["Llama-3.1-8B"])


def test_one_adapter_costs_the_fixed_fraction_and_more_adapters_cost_more() -> None:
    lora = LoraDecodeCost(BASE)
    step = BASE.decode_step_s(32, 32 * 1500)
    assert lora.decode_step_s(32, 32 * 1500, adapters=0) == step  # base-only batch
    assert lora.decode_step_s(32, 32 * 1500, adapters=1) == pytest.approx(step * 1.084)
    eight = lora.decode_step_s(32, 32 * 1500, adapters=8)
    assert eight - lora.decode_step_s(32, 32 * 1500, adapters=1) == pytest.approx(7 * 32 * 7 * 1.25e-6)
    a100 = Roofline(GPUS["A100"], MODELS["Llama-3.1-8B"])  # S-LoRA's GPU: at least 20% lower there
    ratio = LoraDecodeCost(a100).decode_step_s(32, 48_000, 8) / a100.decode_step_s(32, 48_000)
    assert 1.2 < ratio < 1.3 and eight > step


def test_more_adapters_than_a_batch_holds_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 8"):
        LoraDecodeCost(BASE).decode_step_s(16, 16_000, adapters=9)
