"""The multi-turn report (per-turn figures into PERFORMANCE.md) and the prefix-index scale bench."""

from __future__ import annotations

from pathlib import Path

from sun_sglang.bench import multi_turn, prefix_memory, summary
from sun_sglang.bench.loadgen import Record


def _records(cached: list[int]) -> list[Record]:
    """Two conversations of three turns; prompts 40, 90, 140 tokens; turn t finds cached[t]."""
    return [
        Record(3 * c + t, "chat", 0.0, 0.1 * (t + 1), 1.0, 8, 40 + 50 * t, cached[t], conversation=c, turn=t)
        for c in range(2)
        for t in range(3)
    ]


def test_per_turn_shares_and_the_report_section(tmp_path: Path) -> None:
    good, poor = summary.per_turn(_records([0, 40, 90])), summary.per_turn(_records([16, 16, 16]))
    assert good[1]["cached_share_of_previous_prompt"] == {"mean": 1.0, "min": 1.0}
    assert poor[2]["cached_share_of_previous_prompt"]["mean"] == 16 / 90
    assert good[2]["prefill_tokens_computed"] == 2 * (140 - 90)
    workload = {
        "tasks": ["chat"], "num_requests": 2, "turns": {"low": 3, "high": 3}, "arrival": "closed",
        "rate": 1.0, "concurrency": 2, "think_time_s": 0.0, "prompt_words": {"low": 4, "high": 8},
        "output_tokens": {"low": 8, "high": 8}, "seed": 0,
    }  # fmt: skip

    def result(turns: dict) -> dict:
        mode = {"per_turn": turns, "summary": {"requests": 6, "errors": 0, "ttft_s": {}}}
        return {"workload": workload, "sun": mode, "conventional": mode}

    runs = {"cache_aware": result(good), "least_load": result(poor)}
    data = multi_turn.extract(
        runs, {"config": workload, "per_turn": poor}, {"config": workload, "per_turn": good}
    )
    page = "\n".join(multi_turn.section(data))
    assert (
        "| cache_aware | sun | 1 | 2 |" in page
        and "100% (100%)" in page
        and "| 2 | 18% (18%) | 100% (100%) |" in page
    )
    multi_turn.plot(data, tmp_path / "mt.png")
    assert (tmp_path / "mt.png").stat().st_size > 10_000


def test_the_prefix_index_stays_within_its_workers_capacity() -> None:
    small = prefix_memory.measure(conversations=300, workers=2, turns=3, cache_tokens=512)
    assert small["keys_held"] == small["key_bound"] == 2 * 512 // 16  # saturated, never above
    big = prefix_memory.measure(conversations=300, workers=2, turns=3, cache_tokens=1 << 20)
    assert big["keys_held"] < big["key_bound"] and big["traced_mib"] > small["traced_mib"]
