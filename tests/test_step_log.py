"""Decode step times from SGLang's per-step log lines, and the simulator validated with them."""

from __future__ import annotations

import random
from datetime import datetime

import msgspec
import pytest

from sun_sglang.bench.step_log import decode_steps, step_profile
from sun_sglang.bench.workload import WorkloadConfig
from sun_sglang.sim.costs import Profile
from sun_sglang.sim.validate import predict, validate

LINE = (
    "[2026-11-29 15:24:57] Decode batch, #running-req: {n}, #token: 104, token usage: 0.03, pre-allocated"
    " usage: 0.00, #prealloc-req: 0, #transfer-req: 1, #retracted-req: 0, cpu graph: False, gen throughput"
    " (token/s): {t}, #queue-req: 0"
)


def test_each_logged_step_gives_its_batch_and_duration() -> None:
    log = "\n".join(
        [
            LINE.format(n=2, t="16.00"),
            "Prefill batch, #new-seq: 1",
            LINE.format(n=4, t="20.00"),
            LINE.format(n=1, t="0.00"),
        ]
    )
    assert decode_steps(log) == [(2, 0.125), (4, 0.2)]  # a zero throughput carries no step


def test_only_steps_logged_after_the_load_started_count() -> None:
    """The closed-loop profile runs on the same server first; its steps are in the same log."""
    before, after = LINE.format(n=8, t="40.00"), LINE.format(n=3, t="30.00").replace(":57]", ":59]")
    stamp = datetime(2026, 11, 29, 15, 24, 57).timestamp()
    log = before + "\n" + after
    assert decode_steps(log, since=stamp + 0.4) == [(3, 0.1)]  # the profile's second is skipped whole
    assert decode_steps(log, since=stamp) == [(8, 0.2), (3, 0.1)]


def test_the_profile_takes_each_batch_sizes_median_and_keeps_the_prefill_costs() -> None:
    closed = Profile([1, 8], [0.05, 0.09], [40, 200], [0.1, 0.5])
    idle_spell = [(1, 4.0)]  # the first step after idling also counts the idle time
    steps = idle_spell + [(1, 0.08)] * 5 + [(3, 0.11)] * 6 + [(7, 0.2)] * 2  # batch 7: too rare
    p = step_profile(steps, closed)
    assert p.decode_batches == [1.0, 3.0] and p.decode_seconds == pytest.approx([0.08, 0.11])
    assert (p.prefill_lens, p.prefill_seconds) == (closed.prefill_lens, closed.prefill_seconds)
    with pytest.raises(ValueError, match="decode-log-interval"):
        step_profile([(1, 0.1)], closed)


def _measured(workload: WorkloadConfig, true: Profile, closed: Profile) -> dict:
    """A compare result whose measurements are the simulator's with `true` step times: the decode
    server logged steps of `true` (give or take 2%), the closed-loop profile is `closed`."""
    from sun_sglang.bench.workload import plan

    records = [
        {"index": r.index, "task": r.task, "prompt_tokens": 100, "output_tokens": 32, "error": None}
        for r in plan(workload)
    ]
    rng = random.Random(0)
    steps = [(b, true.decode_step_s(b, 0) * rng.uniform(0.98, 1.02)) for b in (1, 2, 3, 4) for _ in range(9)]
    result: dict = {"workload": msgspec.to_builtins(workload)}
    for mode, decode in (("sun", 1), ("conventional", 2)):
        result[mode] = {"decode_replicas": decode, "records": records}
        result[mode]["summary"] = predict(result, mode, true)
    result["sun"].update(profile=msgspec.to_builtins(closed), decode_steps={"decode-0": steps})
    return result


def test_validation_with_logged_steps_recovers_the_true_step_times() -> None:
    workload = WorkloadConfig(tasks=["a", "b"], rate=2.0, num_requests=60, concurrency=16)
    true = Profile([1, 4], [0.10, 0.16], [40, 200], [0.05, 0.2])
    closed = Profile([1, 4], [0.07, 0.11], [40, 200], [0.05, 0.2])  # too fast, as closed loops were
    result = _measured(workload, true, closed)
    out = validate(result, result, "twin")["calibrations"]
    assert list(out) == ["closed-loop profile", "logged steps, this run", "logged steps, run twin"]
    for mode in ("sun", "conventional"):
        assert abs(out["logged steps, this run"]["modes"][mode]["tpot_p50_s"]["error"]) < 0.03
        assert out["closed-loop profile"]["modes"][mode]["tpot_p50_s"]["error"] < -0.2


def test_the_page_shows_every_calibration_beside_the_measurement() -> None:
    from sun_sglang.sim.report import _validation_section

    workload = WorkloadConfig(tasks=["a", "b"], rate=2.0, num_requests=20, concurrency=16)
    true = Profile([1, 4], [0.10, 0.16], [40, 200], [0.05, 0.2])
    result = _measured(workload, true, Profile([1, 4], [0.07, 0.11], [40, 200], [0.05, 0.2]))
    lines = _validation_section(validate(result, result, "twin"))
    head = next(line for line in lines if line.startswith("| mode | figure"))
    assert head.count("predicted (error)") == 3 and "logged steps, run twin" in head
    row = next(line for line in lines if line.startswith("| sun | req_s"))
    assert row.count("%)") == 3
    assert any(line.startswith("- closed-loop profile") and "1: 70 ms, 4: 110 ms" in line for line in lines)
