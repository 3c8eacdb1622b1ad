"""A step-time profile of a running cluster, measured through its gateway with closed loops:
decode step time by batch size (TPOT at a fixed concurrency) and prefill time by prompt length
(TTFT of one request at a time, less one decode step). The simulator takes it as its cost model."""

from __future__ import annotations

import asyncio
import statistics

from sun_sglang.bench import loadgen
from sun_sglang.bench.workload import Lengths, WorkloadConfig
from sun_sglang.sim.costs import Profile

PROMPT_WORDS = Lengths(32, 64)


async def closed_loop(
    url: str, task: str, concurrency: int, n: int, words: Lengths, out: int
) -> list[loadgen.Record]:
    cfg = WorkloadConfig(
        tasks=[task],
        arrival="closed",
        concurrency=concurrency,
        num_requests=n,
        prompt_words=words,
        output_tokens=Lengths(out, out),
        seed=concurrency,
    )
    records, _ = await loadgen.run(cfg, url, progress=False)
    bad = [r.error for r in records if not r.ok]
    if bad:
        raise RuntimeError(f"profiling request failed: {bad[0]}")
    return records


async def measure(
    url: str,
    task: str,
    batches: tuple[int, ...] = (1, 2, 4, 8),
    prompt_words: Lengths = PROMPT_WORDS,
    output_tokens: int = 32,
    prefill_words: tuple[int, ...] = (16, 160),
) -> Profile:
    steps = []
    for c in batches:
        records = await closed_loop(url, task, c, max(4, 2 * c), prompt_words, output_tokens)
        steps.append(statistics.median(r.tpot_s for r in records if r.tpot_s is not None))
    lens, prefill = [], []
    for words in prefill_words:
        records = await closed_loop(url, task, 1, 4, Lengths(words, words), 2)
        lens.append(float(statistics.median(r.prompt_tokens for r in records)))
        ttft = statistics.median(r.ttft_s for r in records if r.ttft_s is not None)
        prefill.append(max(0.0, ttft - steps[0]))
    return Profile(
        decode_batches=[float(b) for b in batches],
        decode_seconds=steps,
        prefill_lens=lens,
        prefill_seconds=prefill,
        source=f"measured through {url} (task {task}, {output_tokens} new tokens, closed loops)",
    )


async def measure_sharing(url: str, tasks: list[str], output_tokens: int = 32, n: int = 4) -> float:
    """TPOT with one request at a time on each task at once: on a conventional cluster whose decode
    servers share one core, the step time of batch 1 with that many servers busy on the core."""
    runs = await asyncio.gather(*(closed_loop(url, t, 1, n, PROMPT_WORDS, output_tokens) for t in tasks))
    return statistics.median(r.tpot_s for records in runs for r in records if r.tpot_s is not None)


def measure_sync(url: str, task: str, **kw: object) -> Profile:
    return asyncio.run(measure(url, task, **kw))  # type: ignore[arg-type]
