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
from typing import Literal

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


def _holds(records: list[Record], wall: float, slo: Slo, tpot_bound: float | None = None) -> bool:
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


Mode = Literal["sun", "conventional"]
SLO = Slo()


def solve(point: Point, slo: Slo = SLO, seed: int = 0, keep_tpots: bool = False) -> dict:
    cost = Roofline(GPUS[point.gpu], MODELS[point.model])
    reqs = requests(point, seed)
    names = [f"t{k}" for k in range(point.tasks)]  # every deployed task, with traffic or not
    share = {t: sum(r.task == t for r in reqs) / len(reqs) for t in names}
    per_prefill = cost.prefill_s([point.prompt_tokens])
    prefill = {t: max(1, math.ceil(point.rate * share[t] * per_prefill / 0.7)) for t in names}
    common = dict(kv_capacity_tokens=cost.kv_capacity_tokens(), prefill_workers=prefill)

    def simulate(mode: Mode, tasks: list[str], decode: int) -> tuple[list[Record], float]:
        shape = ClusterShape(tasks=tasks, mode=mode, decode_workers=decode, **common)  # type: ignore[arg-type]
        return Simulator(shape, cost, cost, seed=seed).run([r for r in reqs if r.task in tasks])

    conv_decode, conv_records = {}, []
    for t in names:  # each task's pool is independent of the others; an idle one still holds a GPU
        if not share[t]:
            conv_decode[t] = 1
            continue
        conv_decode[t] = fewest(lambda d, t=t: _holds(*simulate("conventional", [t], d), slo))
        conv_records += simulate("conventional", [t], conv_decode[t])[0]
    wall = max(r.sent_s + (r.latency_s or 0.0) for r in conv_records)
    conv = summary.summarize(conv_records, wall, sum(conv_decode.values()), 1)
    sun_slo = fewest(lambda d: _holds(*simulate("sun", names, d), slo))
    bound = 1.05 * conv["tpot_s"]["p90"]
    sun_5 = fewest(lambda d: _holds(*simulate("sun", names, d), slo, bound), start=sun_slo)
    row = {**msgspec.to_builtins(point), "prefill_gpus": sum(prefill.values())}
    row["conventional"] = _figures(conv, sum(conv_decode.values()), row["prefill_gpus"])
    tpots = {"conventional": [r.tpot_s for r in conv_records if r.tpot_s is not None]}
    for label, d in (("sun_same_slo", sun_slo), ("sun_tpot_5pct", sun_5)):
        records, wall = simulate("sun", names, d)
        row[label] = _figures(summary.summarize(records, wall, d, 1), d, row["prefill_gpus"])
        tpots[label] = [r.tpot_s for r in records if r.tpot_s is not None]
    if keep_tpots:
        row["tpots"] = tpots
    for label in ("sun_same_slo", "sun_tpot_5pct"):
        row[f"{label}_gain_per_gpu"] = row[label]["tok_s_per_gpu"] / row["conventional"]["tok_s_per_gpu"]
        row[f"{label}_gain_per_decode_gpu"] = (
            row[label]["tok_s_per_decode_gpu"] / row["conventional"]["tok_s_per_decode_gpu"]
        )
    return row


def _figures(s: dict, decode: int, prefill: int) -> dict:
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
