"""The multi-LoRA decode cost: the base's step, a fixed fraction, and a cost per distinct adapter."""

from __future__ import annotations

import pytest

from sun_sglang.sim.costs import GPUS, MODELS, Roofline
from sun_sglang.sim.engine import Simulator
from sun_sglang.sim.lora import LoraDecodeCost
from sun_sglang.sim.shape import ClusterShape, SimRequest

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


def test_an_adapters_weights_and_when_reading_them_is_the_longer_part() -> None:
    # Llama-3.1-8B, rank 16, 7 projections: 16 x (2(4096+4096) + 2(4096+1024) + 3(4096+14336)) x 32
    assert LoraDecodeCost(BASE).adapter_bytes() == 2 * 16 * 81_920 * 32
    small, big = LoraDecodeCost(BASE), LoraDecodeCost(BASE, rank=256)
    assert small.lora_s(8) == pytest.approx(7 * 32 * 7 * 1.25e-6)  # the kernels
    assert big.lora_s(8) == pytest.approx(8 * big.adapter_bytes() / 3.35e12)  # the weights (H100)


def _run(mode: str, tasks: int, cost: object, prealloc: bool = False) -> tuple[list, Simulator]:
    names = [f"t{k}" for k in range(tasks)]
    reqs = [SimRequest(i, names[i % tasks], 0.0, 100, 20) for i in range(32)]
    shape = ClusterShape(
        tasks=names,
        mode=mode,
        shared_prefill_workers=1,
        prealloc_between_steps=prealloc,  # type: ignore[arg-type]
    )
    sim = Simulator(shape, BASE, cost)  # type: ignore[arg-type]
    return sim.run(reqs)[0], sim


@pytest.mark.parametrize("prealloc", [False, True], ids=["at-join", "at-preallocation"])
def test_multi_lora_decode_runs_at_most_max_adapters_at_once_and_slower_than_sun(prealloc: bool) -> None:
    lora = LoraDecodeCost(BASE, max_adapters=4)
    # a step with 5 adapters would raise; with SGLang's pre-allocation the limit is applied there
    # (a request passed over reserves no KV), and joining the batch no longer checks it
    records, sim = _run("multi_lora", 16, lora, prealloc)
    assert len(records) == 32 and all(r.output_tokens == 20 for r in records)
    assert not any(w.adapters or w.active or w.reserved for p in sim.decode.values() for w in p.workers)
    sun, _ = _run("sun", 16, BASE, prealloc)
    tpot = [r.tpot_s for r in records]
    assert min(tpot) > max(r.tpot_s for r in sun)  # every step pays for the adapters
    # 16 tasks, 4 adapters a batch: the requests of the other 12 wait for a batch's adapters to finish
    assert max(r.ttft_s for r in records) > 3 * max(r.ttft_s for r in sun)


def test_multi_lora_needs_the_lora_cost_and_sun_refuses_it() -> None:
    with pytest.raises(ValueError, match="LoraDecodeCost"):
        _run("multi_lora", 2, BASE)
    with pytest.raises(ValueError, match="LoraDecodeCost"):
        _run("sun", 2, LoraDecodeCost(BASE))


def test_the_decode_side_of_each_shared_pool_mode() -> None:
    from sun_sglang.sim import lora_sweep

    per_token = BASE.model.kv_bytes_per_token()
    one = LoraDecodeCost(BASE).adapter_bytes()
    capped, kv_capped = lora_sweep.decode_side("multi_lora", BASE, 64)
    every, kv_every = lora_sweep.decode_side("multi_lora_all", BASE, 64)
    assert isinstance(capped, LoraDecodeCost) and isinstance(every, LoraDecodeCost)
    assert (capped.max_adapters, every.max_adapters) == (8, 64)
    # the GPU holds the adapters it may batch: their weights come out of its KV memory
    assert BASE.kv_capacity_tokens() - kv_capped == pytest.approx(8 * one / per_token, abs=1)
    assert BASE.kv_capacity_tokens() - kv_every == pytest.approx(64 * one / per_token, abs=1)
    base, kv = lora_sweep.decode_side("sun_lora", BASE, 64)
    assert base == BASE and kv == BASE.kv_capacity_tokens()
    (q4, kv4), (q8, kv8) = (lora_sweep.decode_side(m, BASE, 64) for m in ("qsun4", "qsun8"))
    assert isinstance(q4, Roofline) and isinstance(q8, Roofline)
    assert q4.weight_bytes < q8.weight_bytes < 2.0 and kv4 > kv8 > kv  # fewer bytes a step, more KV


def test_sun_lora_needs_no_more_decode_gpus_than_multi_lora_and_quantized_fewer_or_equal() -> None:
    from sun_sglang.sim import lora_sweep
    from sun_sglang.sim.sweep import Point

    row = lora_sweep.solve(Point("H100", "Llama-3.1-8B", 16, 1.0, 32.0, 128, 512, requests=400))
    gpus = {m: row[m]["decode_gpus"] for m in lora_sweep.MODES}
    assert gpus["conventional"] >= 16  # a pool per task, idle or not
    assert gpus["qsun4"] <= gpus["sun_lora"] <= gpus["multi_lora_all"] <= gpus["multi_lora"], gpus
    # the same requests are served in every mode
    assert all(row[m]["tok_s"] == pytest.approx(row["sun_lora"]["tok_s"], rel=0.1) for m in lora_sweep.MODES)
