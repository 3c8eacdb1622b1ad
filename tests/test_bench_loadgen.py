"""The load generator: seeded workloads (popularity, arrivals, lengths), and a run against the
gateway on stub servers with its summary."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from sun_sglang.bench import loadgen, summary
from sun_sglang.bench.__main__ import parse, workload
from sun_sglang.bench.workload import (
    Lengths,
    WorkloadConfig,
    arrival_gaps,
    plan,
    plan_conversations,
    task_weights,
)
from tests.test_gateway import gateway, run


def test_plans_are_seeded_and_follow_zipf_popularity() -> None:
    cfg = WorkloadConfig(tasks=["a", "b", "c", "d"], popularity="zipf", zipf_alpha=1.5, num_requests=4000)
    first = plan(cfg)
    assert first == plan(cfg) and first != plan(WorkloadConfig(**{**_fields(cfg), "seed": 1}))
    share = {t: sum(r.task == t for r in first) / len(first) for t in cfg.tasks}
    for task, weight in zip(cfg.tasks, task_weights(4, "zipf", 1.5)):
        assert abs(share[task] - weight) < 0.03
    assert share["a"] > share["b"] > share["c"] > share["d"]
    assert task_weights(3, "uniform", 2.0) == [1 / 3] * 3


def test_arrivals_have_the_rate_and_gamma_is_burstier() -> None:
    import random

    poisson = arrival_gaps(WorkloadConfig(tasks=["a"], rate=4.0), random.Random(0), 20000)
    bursty = arrival_gaps(
        WorkloadConfig(tasks=["a"], arrival="gamma", rate=4.0, burstiness=0.25), random.Random(0), 20000
    )
    assert abs(statistics.mean(poisson) - 0.25) < 0.01 and abs(statistics.mean(bursty) - 0.25) < 0.02
    cv = lambda xs: statistics.stdev(xs) / statistics.mean(xs)  # noqa: E731
    assert abs(cv(poisson) - 1.0) < 0.05 and cv(bursty) > 1.7  # gamma shape k: cv = 1/sqrt(k)
    assert arrival_gaps(WorkloadConfig(tasks=["a"], arrival="closed"), random.Random(0), 3) == [0.0] * 3


def test_prompts_from_task_data_and_bad_configs() -> None:
    cfg = WorkloadConfig(
        tasks=["math"], prompt_source="tasks", task_data={"math": "bb_2digit_addition"}, num_requests=5
    )
    assert all(r.messages[0]["content"].startswith("What is") for r in plan(cfg))
    with pytest.raises(ValueError, match="task_data"):
        WorkloadConfig(tasks=["math"], prompt_source="tasks")
    with pytest.raises(ValueError, match="at least one task"):
        WorkloadConfig(tasks=[])


def test_cli_flags_build_the_workload() -> None:
    args = parse(["run", "--url", "http://x", "--tasks", "a,b", "--output-tokens", "8:16", "--rate", "3"])
    cfg = workload(args)
    assert cfg.tasks == ["a", "b"] and cfg.output_tokens == Lengths(8, 16) and cfg.rate == 3.0


def test_a_closed_loop_run_through_the_gateway(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            cfg = WorkloadConfig(tasks=["math"], arrival="closed", concurrency=4, num_requests=12)
            cfg = WorkloadConfig(**{**_fields(cfg), "output_tokens": Lengths(5, 5)})
            records, wall = await loadgen.run(cfg, url, progress=False)
            async with client.get(f"{url}/metrics") as resp:
                workers = summary.workers_from_metrics(await resp.text())
            bad = WorkloadConfig(tasks=["nope"], arrival="closed", num_requests=2)
            failed, _ = await loadgen.run(bad, url, progress=False)
        assert workers == {"prefill:math": 1, "decode": 1}
        assert len(records) == 12 and all(r.ok for r in records)
        assert all(r.output_tokens == 5 and len(r.itl_s) == 4 and r.ttft_s is not None for r in records)
        assert all(body["sampling_params"]["ignore_eos"] for body in decode.requests)
        s = summary.summarize(records, wall, decode_workers=1, total_workers=2, slo_ttft_s=10.0)
        assert s["errors"] == 0 and s["req_s"] > 0 and s["goodput_req_s"] == s["req_s"]
        assert s["output_tok_s_per_worker"] == pytest.approx(s["output_tok_s"] / 2)
        assert s["ttft_s"]["p50"] <= s["latency_s"]["p50"]
        assert all(r.error and "404" in r.error for r in failed)

    run(body())


def test_multi_turn_plans_conversations_with_seeded_turns_and_think_times() -> None:
    cfg = WorkloadConfig(tasks=["a", "b"], num_requests=50, turns=Lengths(2, 4), think_time_s=0.5)
    convs = plan_conversations(cfg)
    assert convs == plan_conversations(cfg) and len(convs) == 50
    assert {len(c.turns) for c in convs} == {2, 3, 4}
    turns = [t for c in convs for t in c.turns]
    assert [t.index for t in turns] == list(range(len(turns)))  # request indices count turns
    assert all(t.turn == k and t.conversation == c.index for c in convs for k, t in enumerate(c.turns))
    thinks = [t.think_s for t in turns if t.turn]
    assert all(t.think_s == 0 for t in turns if not t.turn) and abs(statistics.mean(thinks) - 0.5) < 0.15
    with pytest.raises(ValueError, match="turns"):
        WorkloadConfig(tasks=["a"], turns=Lengths(3, 2))
    args = parse(["run", "--url", "http://x", "--tasks", "a", "--turns", "3", "--think-time-s", "1"])
    assert workload(args).turns == Lengths(3, 3) and workload(args).multi_turn


def test_a_multi_turn_run_sends_each_conversation_its_history(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            cfg = WorkloadConfig(
                tasks=["math"], arrival="closed", concurrency=3, num_requests=3, turns=Lengths(3, 3)
            )
            cfg = WorkloadConfig(**{**_fields(cfg), "output_tokens": Lengths(4, 4)})
            records, _ = await loadgen.run(cfg, url, progress=False)
        assert len(records) == 9 and all(r.ok for r in records)
        by_turn = {(r.conversation, r.turn): r for r in records}
        assert set(by_turn) == {(c, t) for c in range(3) for t in range(3)}
        for c in range(3):  # each turn's prompt holds the previous one, answer included
            prompts = [by_turn[(c, t)].prompt_tokens for t in range(3)]
            assert prompts[0] < prompts[1] < prompts[2]
        sent = [body["input_ids"] for body in decode.requests]
        extends = [ids for ids in sent if any(len(o) < len(ids) and ids[: len(o)] == o for o in sent)]
        assert len(extends) == 6  # turns 1 and 2 of each conversation: its previous prompt + more
        turns = summary.per_turn(records)
        assert sorted(turns) == [0, 1, 2] and all(t["requests"] == 3 for t in turns.values())
        assert turns[0]["cached_share_of_previous_prompt"]["mean"] is None
        assert turns[1]["prefill_tokens_computed"] == sum(by_turn[(c, 1)].prompt_tokens for c in range(3))
        assert "cached / previous prompt" in summary.turn_table(turns)

    run(body())


def _fields(cfg: WorkloadConfig) -> dict:
    return {f: getattr(cfg, f) for f in cfg.__struct_fields__}
