"""Figures from a run's records: throughput (requests and output tokens per second, per decode
worker and per worker), latency percentiles, errors, and goodput under a TTFT/TPOT SLO."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

from sun_sglang.bench.loadgen import Record


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in qs}
    if len(values) == 1:
        return {f"p{q}": values[0] for q in qs}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {f"p{q}": cuts[q - 1] for q in qs}


def summarize(
    records: Sequence[Record],
    wall_s: float,
    decode_workers: int,
    total_workers: int,
    slo_ttft_s: float | None = None,
    slo_tpot_s: float | None = None,
) -> dict:
    ok = [r for r in records if r.ok]
    tokens = sum(r.output_tokens for r in ok)
    good = [
        r
        for r in ok
        if (slo_ttft_s is None or (r.ttft_s is not None and r.ttft_s <= slo_ttft_s))
        and (slo_tpot_s is None or (r.tpot_s is not None and r.tpot_s <= slo_tpot_s))
    ]
    out_tok_s = tokens / wall_s if wall_s > 0 else 0.0
    return {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "wall_s": wall_s,
        "req_s": len(ok) / wall_s if wall_s > 0 else 0.0,
        "output_tok_s": out_tok_s,
        "output_tok_s_per_decode_worker": out_tok_s / decode_workers if decode_workers else None,
        "output_tok_s_per_worker": out_tok_s / total_workers if total_workers else None,
        "goodput_req_s": len(good) / wall_s if wall_s > 0 else 0.0,
        "slo": {"ttft_s": slo_ttft_s, "tpot_s": slo_tpot_s},
        "ttft_s": percentiles([r.ttft_s for r in ok if r.ttft_s is not None]),
        "tpot_s": percentiles([t for r in ok if (t := r.tpot_s) is not None]),
        "itl_s": percentiles([gap for r in ok for gap in r.itl_s]),
        "latency_s": percentiles([r.latency_s for r in ok if r.latency_s is not None]),
        "cached_prompt_fraction": (
            sum(r.cached_tokens for r in ok) / max(1, sum(r.prompt_tokens for r in ok)) if ok else None
        ),
    }


def per_task(records: Sequence[Record], wall_s: float, **kw: object) -> dict[str, dict]:
    tasks = sorted({r.task for r in records})
    return {t: summarize([r for r in records if r.task == t], wall_s, 0, 0, **kw) for t in tasks}  # type: ignore[arg-type]


_POOL = re.compile(r'^sun_pool_workers\{pool="([^"]+)",state="healthy"\} ([0-9.]+)$', re.M)


def decode_workers(workers: dict[str, int]) -> int:
    """Healthy decode workers, every decode pool together (shared, or one per task)."""
    return sum(n for pool, n in workers.items() if pool.split(":")[0] == "decode")


def workers_from_metrics(text: str) -> dict[str, int]:
    """Healthy workers per pool, from the gateway's /metrics: {"decode": 1, "prefill:math": 1}."""
    return {pool: int(float(n)) for pool, n in _POOL.findall(text)}


def per_turn(records: Sequence[Record]) -> dict[int, dict]:
    """Multi-turn runs, per turn (0-based): TTFT percentiles, prompt tokens, the prefill tokens
    computed (prompt - cached) and the share of the conversation's previous prompt the prefill
    server found cached (in PD its radix cache holds prompts, never the answers)."""
    prompts = {(r.conversation, r.turn): r.prompt_tokens for r in records if r.ok}
    out: dict[int, dict] = {}
    for turn in sorted({r.turn for r in records if r.conversation is not None}):
        ok = [r for r in records if r.ok and r.conversation is not None and r.turn == turn]
        shares = [r.cached_tokens / prev for r in ok if (prev := prompts.get((r.conversation, turn - 1)))]
        computed = [r.prompt_tokens - r.cached_tokens for r in ok]
        out[turn] = {
            "requests": len(ok),
            "ttft_s": percentiles([r.ttft_s for r in ok if r.ttft_s is not None]),
            "prompt_tokens_mean": statistics.fmean(r.prompt_tokens for r in ok) if ok else None,
            "prefill_tokens_computed": sum(computed),
            "prefill_tokens_computed_mean": statistics.fmean(computed) if ok else None,
            "cached_share_of_previous_prompt": {
                "mean": statistics.fmean(shares) if shares else None,
                "min": min(shares) if shares else None,
            },
        }
    return out


def turn_table(turns: dict[int, dict]) -> str:
    rows = ["turn  requests  TTFT p50 / p90 s  prompt tok  computed tok  cached / previous prompt (min)"]
    for turn, t in turns.items():
        share = t["cached_share_of_previous_prompt"]
        ttft = t["ttft_s"]
        rows.append(
            f"{turn:>4}  {t['requests']:>8}  {_f(ttft['p50'])} / {_f(ttft['p90'])}  "
            f"{_f(t['prompt_tokens_mean'], 1):>10}  {_f(t['prefill_tokens_computed_mean'], 1):>12}  "
            f"{_f(share['mean'])} ({_f(share['min'])})"
        )
    return "\n".join(rows)


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
