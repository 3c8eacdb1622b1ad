"""Where first-token time goes, from the SGLang servers' own per-request timing. Started with
`--enable-request-time-stats-logging`, each server logs one line per finished request:

    ReqTimeStats(rid=R, ..., input_len=N, ..., type=prefill): bootstrap_duration=1.2ms,
        queue_duration=0.3ms, forward_duration=45.0ms, entry_time=1764650000.123, ...
    ReqTimeStats(rid=R, ..., type=decode): bootstrap_duration=80.1ms, alloc_wait_duration=0.1ms,
        transfer_duration=60.2ms, queue_duration=70.3ms, forward_duration=2.1s, entry_time=...

Both legs of a request carry the gateway's rid, so the two lines join into its stages: on the
decode server, the handshake (pre-allocation until the prefill server has the KV's place), the
wait for the KV (the prefill's queue, forward and the transfer) and the pick-up (until a decode
step takes the request in); on the prefill server, its own view of the handshake, its queue and
its "forward": SGLang's forward_duration there runs from the forward until the scheduler's
inflight poll sees the KV's transfer done, a poll that follows the next batch's forward when one
is ready (`event_loop_normal_disagg_prefill`), so under load it holds more than the forward.
Each row keeps both legs' entry times (unix seconds), the index of the server log each leg came
from, the decode leg's time in the running batch and the prefill's KV transfer size (MB) and speed
(GB/s; SGLang prints two decimals, so small transfers read 0.00-0.01) to place the requests in time."""

from __future__ import annotations

import re
import statistics

TIME_STATS_ARGS = ["--enable-request-time-stats-logging"]
_LINE = re.compile(r"ReqTimeStats\(rid=([^,\s]+),.*?input_len=(\d+),.*?type=(prefill|decode)\): (.*)$", re.M)
_FIELD = re.compile(r"(\w+)=([\d.]+)(ms|s)?\b")
# stage name -> (leg, field); durations in seconds
STAGES = {
    "handshake": ("decode", "bootstrap_duration"),
    "alloc_wait": ("decode", "alloc_wait_duration"),
    "prefill_handshake": ("prefill", "bootstrap_duration"),
    "prefill_queue": ("prefill", "queue_duration"),
    "prefill_forward": ("prefill", "forward_duration"),
    "kv_wait": ("decode", "transfer_duration"),
    "pickup": ("decode", "queue_duration"),
}


def parse(log_text: str) -> dict[str, dict[str, float]]:
    """rid -> its fields from one server's log (durations in seconds; entry_time unix seconds;
    input_len tokens)."""
    out: dict[str, dict[str, float]] = {}
    for rid, input_len, leg, fields in _LINE.findall(log_text):
        row: dict[str, float] = {"input_len": float(input_len)}
        for name, value, unit in _FIELD.findall(fields):
            row[name] = float(value) / (1e3 if unit == "ms" else 1.0)
        row["leg"] = 0.0 if leg == "prefill" else 1.0
        out[rid] = row
    return out


def stages(
    prefill_logs: list[str], decode_logs: list[str], since: float = 0.0
) -> dict[str, dict[str, float]]:
    """rid -> stage -> seconds, for the requests both legs logged, entered at or after `since`."""
    prefill = {k: {**v, "server": i} for i, text in enumerate(prefill_logs) for k, v in parse(text).items()}
    decode = {k: {**v, "server": i} for i, text in enumerate(decode_logs) for k, v in parse(text).items()}
    out = {}
    for rid, d in decode.items():
        p = prefill.get(rid)
        if p is None or d.get("entry_time", 0.0) < since or rid.startswith("HEALTH_CHECK"):
            continue  # SGLang's own health probes go through both legs too
        legs = {"prefill": p, "decode": d}
        out[rid] = {stage: legs[leg][field] for stage, (leg, field) in STAGES.items() if field in legs[leg]}
        out[rid]["prompt_tokens"] = p["input_len"]
        out[rid] |= {f"{leg}_entry": legs[leg]["entry_time"] for leg in legs if "entry_time" in legs[leg]}
        out[rid] |= {f"{leg}_server": legs[leg]["server"] for leg in legs}  # the index of its log
        out[rid] |= {name: p[name] for name in ("transfer_total", "transfer_speed") if name in p}
        out[rid]["decode_forward"] = d.get("forward_duration", 0.0)  # in the decode batch until it ended
    return out


def summary(by_rid: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """stage -> {n, p50, p90} over the requests (seconds)."""
    out = {}
    for stage in STAGES:
        values = sorted(s[stage] for s in by_rid.values() if stage in s)
        if values:
            out[stage] = {
                "n": len(values),
                "p50": statistics.median(values),
                "p90": values[min(len(values) - 1, int(0.9 * len(values)))],
            }
    return out
