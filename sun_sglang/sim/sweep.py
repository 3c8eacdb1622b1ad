"""Paper scale: for each workload point, the fewest decode GPUs that hold the latency SLO, for
SUN (one shared pool) and conventional disaggregation (a pool per task, at least one GPU each).

Both modes get the same prefill GPUs (per task: enough for its prompt load at 70% busy, at least
one) and serve the same requests, so their throughput is the same and throughput per GPU is a
ratio of GPU counts. SUN is sized twice: under the same SLO as conventional, and under "TPOT
within 5% of conventional's" (the paper's condition), which is stricter where conventional's
half-empty decode GPUs run small batches.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import msgspec

from sun_sglang.bench import summary
from sun_sglang.bench.loadgen import Record
from sun_sglang.bench.workload import task_weights
from sun_sglang.sim.costs import GPUS, MODELS, Roofline
from sun_sglang.sim.engine import Simulator
from sun_sglang.sim.shape import ClusterShape, SimRequest


class Point(msgspec.Struct, frozen=True):
    gpu: str
    model: str
    tasks: int
    alpha: float  # Zipf popularity over tasks (0: uniform)
    rate: float  # requests per second, all tasks together
    output_tokens: int  # mean; drawn uniformly in [mean/2, 3*mean/2]
    prompt_tokens: int = 1024  # the same
    requests: int = 2000


class Slo(msgspec.Struct, frozen=True):
    tpot_p90_s: float = 0.020
    ttft_p90_s: float = 1.0


def requests(point: Point, seed: int = 0) -> list[SimRequest]:
    rng = random.Random(seed)
    names = [f"t{k}" for k in range(point.tasks)]
    weights = task_weights(point.tasks, "zipf", point.alpha)
    at, out = 0.0, []
    for i in range(point.requests):
        at += rng.expovariate(point.rate)
        prompt = rng.randint(point.prompt_tokens // 2, 3 * point.prompt_tokens // 2)
        output = rng.randint(max(2, point.output_tokens // 2), 3 * point.output_tokens // 2)
        out.append(SimRequest(i, rng.choices(names, weights)[0], at, prompt, output))
    return out


def meets_slo(records: list[Record], wall: float, slo: Slo, tpot_bound: float | None = None) -> bool:
    s = summary.summarize(records, wall, 1, 1)
    tpot, ttft = s["tpot_s"]["p90"], s["ttft_s"]["p90"]
    bound = slo.tpot_p90_s if tpot_bound is None else tpot_bound
    return tpot is not None and ttft is not None and tpot <= bound and ttft <= slo.ttft_p90_s


def fewest(holds: Callable[[int], bool], start: int = 1, limit: int = 1024) -> int:
    """The smallest n >= start with holds(n), assuming more workers never hurt (doubling, then
    bisection). Raises if even `limit` does not hold."""
    low, high = start - 1, start
    while not holds(high):
        low, high = high, high * 2
        if high > limit:
            raise RuntimeError(f"no count up to {limit} holds the SLO")
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if holds(mid) else (mid, high)
    return high


SLO = Slo()


def prefill_gpus(rate: float, one_prompt_s: float) -> int:
    """Enough prefill GPUs for a prompt load at 70% busy, at least one."""
    return max(1, math.ceil(rate * one_prompt_s / 0.7))


def shares(point: Point, reqs: list[SimRequest]) -> dict[str, float]:
    """Every deployed task's share of the requests, with traffic or not."""
    names = [f"t{k}" for k in range(point.tasks)]
    return {t: sum(r.task == t for r in reqs) / len(reqs) for t in names}


def conventional(
    reqs: list[SimRequest], share: dict[str, float], common: dict, cost: Roofline, slo: Slo, seed: int
) -> tuple[int, list[Record], dict]:
    """A decode pool per task, each sized alone (an idle task's still holds a GPU): the decode GPUs,
    every request's record, and their summary."""

    def simulate(task: str, decode: int) -> tuple[list[Record], float]:
        shape = ClusterShape(tasks=[task], mode="conventional", decode_workers=decode, **common)
        return Simulator(shape, cost, cost, seed=seed).run([r for r in reqs if r.task == task])

    decode, records = 0, []
    for t in share:
        if not share[t]:
            decode += 1
            continue
        d = fewest(lambda d, t=t: meets_slo(*simulate(t, d), slo))
        decode += d
        records += simulate(t, d)[0]
    wall = max(r.sent_s + (r.latency_s or 0.0) for r in records)
    return decode, records, summary.summarize(records, wall, decode, 1)


def solve(point: Point, slo: Slo = SLO, seed: int = 0, keep_tpots: bool = False) -> dict:
    cost = Roofline(GPUS[point.gpu], MODELS[point.model])
    reqs = requests(point, seed)
    share = shares(point, reqs)
    names = list(share)
    per_prefill = cost.prefill_s([point.prompt_tokens])
    prefill = {t: prefill_gpus(point.rate * share[t], per_prefill) for t in names}
    common = dict(kv_capacity_tokens=cost.kv_capacity_tokens(), prefill_workers=prefill)

    def simulate(decode: int) -> tuple[list[Record], float]:
        shape = ClusterShape(tasks=names, mode="sun", decode_workers=decode, **common)  # type: ignore[arg-type]
        return Simulator(shape, cost, cost, seed=seed).run(reqs)

    conv_decode, conv_records, conv = conventional(reqs, share, common, cost, slo, seed)
    sun_slo = fewest(lambda d: meets_slo(*simulate(d), slo))
    bound = 1.05 * conv["tpot_s"]["p90"]
    sun_5 = fewest(lambda d: meets_slo(*simulate(d), slo, bound), start=sun_slo)
    row = {**msgspec.to_builtins(point), "prefill_gpus": sum(prefill.values())}
    row["conventional"] = figures(conv, conv_decode, row["prefill_gpus"])
    tpots = {"conventional": [r.tpot_s for r in conv_records if r.tpot_s is not None]}
    for label, d in (("sun_same_slo", sun_slo), ("sun_tpot_5pct", sun_5)):
        records, wall = simulate(d)
        row[label] = figures(summary.summarize(records, wall, d, 1), d, row["prefill_gpus"])
        tpots[label] = [r.tpot_s for r in records if r.tpot_s is not None]
    if keep_tpots:
        row["tpots"] = tpots
    for label in ("sun_same_slo", "sun_tpot_5pct"):
        row[f"{label}_gain_per_gpu"] = row[label]["tok_s_per_gpu"] / row["conventional"]["tok_s_per_gpu"]
        row[f"{label}_gain_per_decode_gpu"] = (
            row[label]["tok_s_per_decode_gpu"] / row["conventional"]["tok_s_per_decode_gpu"]
        )
    return row


def figures(s: dict, decode: int, prefill: int) -> dict:
    return {
        "decode_gpus": decode,
        "gpus": decode + prefill,
        "tok_s": s["output_tok_s"],
        "tok_s_per_decode_gpu": s["output_tok_s"] / decode,
        "tok_s_per_gpu": s["output_tok_s"] / (decode + prefill),
        "tpot_p50_s": s["tpot_s"]["p50"],
        "tpot_p90_s": s["tpot_s"]["p90"],
        "ttft_p90_s": s["ttft_s"]["p90"],
    }
