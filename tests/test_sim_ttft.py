"""First-token time in the simulator: its costs fitted on a run recover the costs the run was made
with (a run the simulator itself made, with known costs, standing in for a measured one)."""

from __future__ import annotations

import msgspec
import pytest

from sun_sglang.bench.workload import Lengths, WorkloadConfig, plan
from sun_sglang.sim import ttft
from sun_sglang.sim.costs import Profile
from sun_sglang.sim.validate import simulate

STEPS = Profile([1.0, 2.0, 4.0, 8.0], [0.07, 0.1, 0.12, 0.14], [40.0, 120.0], [0.09, 0.25])
TRUTH = {"handshake_s": 0.02, "transfer_s": 0.015, "first_token_s": 0.03}


def _measured_run(seed: int, rate: float) -> dict:
    """A stand-in for a measured compare run: requests, their TTFT summary and stage rows."""
    workload = WorkloadConfig(
        tasks=["a", "b"],
        rate=rate,
        num_requests=120,
        concurrency=16,
        output_tokens=Lengths(32, 32),
        seed=seed,
    )
    records = [
        {
            "index": r.index,
            "task": r.task,
            "prompt_tokens": 40 + (r.index * 37) % 80,
            "output_tokens": 32,
            "error": None,
        }
        for r in plan(workload)
    ]
    result: dict = {"workload": msgspec.to_builtins(workload)}
    for mode in ("sun", "conventional"):
        result[mode] = {"records": records, "decode_replicas": 1}
        summary, sim = simulate(result, mode, STEPS, first_token=TRUTH)
        lengths = {r["index"]: r["prompt_tokens"] for r in records}
        rows = [
            {
                "handshake": h,
                "kv_wait": k,
                "prompt_tokens": lengths[i],
                "prefill_forward": STEPS.prefill_s([lengths[i]]),
            }
            for i, (h, k) in sim.stages.items()
        ]
        ttfts = {r.index: r.ttft_s for r in sim.records}
        timed = [{**r, "ttft_s": ttfts[r["index"]]} for r in records]
        result[mode].update(summary=summary, ttft_stage_rows=rows, records=timed)
    return result


def test_the_fit_recovers_the_costs_and_predicts_another_run() -> None:
    calibration, other = _measured_run(0, 1.0), _measured_run(1, 0.6)  # below the decode's capacity
    for mode in ("sun", "conventional"):
        costs = ttft.calibrate(calibration, mode, STEPS, overhead=1.0)
        lens = costs.prefill_lens  # the forward's line at the shortest and longest prompt
        assert costs.prefill_seconds == pytest.approx([STEPS.prefill_s([int(n)]) for n in lens], abs=1e-6)
        assert costs.handshake_s == pytest.approx(TRUTH["handshake_s"], abs=0.005)
        assert costs.transfer_s == pytest.approx(TRUTH["transfer_s"], abs=0.005)
        assert costs.first_token_s == pytest.approx(TRUTH["first_token_s"], abs=0.005)
        predicted = ttft.predict(other, mode, STEPS, 1.0, costs)["ttft_s"]
        measured = other[mode]["summary"]["ttft_s"]
        assert predicted["p50"] == pytest.approx(measured["p50"], rel=0.05)
        assert predicted["p90"] == pytest.approx(measured["p90"], rel=0.1)


def test_without_the_step_waits_ttft_is_under_predicted() -> None:
    """What the old model missed: the same fixed costs without the handshake's wait for a step."""
    run = _measured_run(0, 2.0)
    flat = {**TRUTH, "prealloc_between_steps": False}
    summary, _ = simulate(run, "sun", STEPS, first_token=flat)
    assert summary["ttft_s"]["p90"] < 0.95 * run["sun"]["summary"]["ttft_s"]["p90"]


def test_a_run_without_time_stats_is_refused() -> None:
    run = _measured_run(0, 2.0)
    run["sun"]["ttft_stage_rows"] = []
    with pytest.raises(ValueError, match="time stats"):
        ttft.calibrate(run, "sun", STEPS, overhead=1.0)


def test_the_prefill_line_takes_the_forwards_that_ran_alone_on_the_core() -> None:
    """Two forwards that overlapped on the prefill core each took longer: the line leaves them out
    (the simulator shares the core between them itself); rows without entry times keep them all."""

    def row(start: float, tokens: float, forward: float) -> dict:
        return {"prefill_entry": start, "prompt_tokens": tokens, "prefill_forward": forward}

    alone = [row(0.0, 40.0, 0.2), row(10.0, 80.0, 0.4)]
    shared = [row(20.0, 40.0, 0.6), row(20.1, 80.0, 0.9)]  # beside each other: slower
    assert ttft.alone_on_the_core(alone + shared) == alone
    assert ttft.prefill_line(ttft.alone_on_the_core(alone + shared)) == (
        [40.0, 80.0],
        pytest.approx([0.2, 0.4]),
    )
    untimed = [{k: v for k, v in r.items() if k != "prefill_entry"} for r in alone + shared]
    assert ttft.alone_on_the_core(untimed) == untimed
