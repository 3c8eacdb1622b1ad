"""First-token time: the simulator's PD path calibrated on one measured CPU run and predicting
another (`python -m sun_sglang.bench compare` with the servers' request time stats).

What makes up TTFT in SGLang's PD (bench.time_stats measures each stage on the servers):

- the handshake: the decode server pre-allocates the KV's place between two of its steps (a
  busy server's next loop comes when its current step ends) and hands it to the prefill server;
- the prefill server's queue and forward (the profile's prefill cost: its forward durations);
- the transfer, then the decode server's pick-up, again between two of its steps;
- outside the servers' stages: the gateway, HTTP, tokenizer and detokenizer (a fixed time).

The simulator models the waits for the steps and the prefill queue. The three fixed parts (the
handshake, the KV's transfer and pick-up, what lies outside the servers) are fitted on the
calibration run so that the simulated means match the measured ones (a fixed cost shifts a mean
one for one): the handshake's, the wait for the KV's, and the TTFT's. The prefill cost is a straight
line through that run's forward durations by prompt length, of the forwards that ran alone on the
prefill core (the simulator shares the core between overlapping ones itself)."""

from __future__ import annotations

import statistics

import msgspec

from sun_sglang.sim.costs import Profile
from sun_sglang.sim.validate import calibrations, sharing_overhead, simulate


class FirstTokenCosts(msgspec.Struct, frozen=True):
    handshake_s: float  # the bootstrap beyond the wait for a decode step
    transfer_s: float  # the KV's move and its pick-up beyond the wait for a decode step
    first_token_s: float  # outside the servers' stages
    prefill_lens: list[float]
    prefill_seconds: list[float]  # the prefill forward at those prompt lengths
    source: str = ""

    def shape_fields(self) -> dict:
        return {
            "handshake_s": self.handshake_s,
            "transfer_s": self.transfer_s,
            "first_token_s": self.first_token_s,
        }

    def profile(self, steps: Profile) -> Profile:
        """`steps`' decode steps with this run's prefill forward."""
        return msgspec.structs.replace(
            steps, prefill_lens=self.prefill_lens, prefill_seconds=self.prefill_seconds
        )


def _forward_start(row: dict) -> float:
    return row["prefill_entry"] + row.get("prefill_handshake", 0.0) + row.get("prefill_queue", 0.0)


def alone_on_the_core(rows: list[dict], most_overlap: float = 0.1) -> list[dict]:
    """The rows whose prefill forward ran alone: another forward overlapped it for less than
    `most_overlap` of its time. bench compare pins every prefill server to the same core, and the
    simulator shares that core between the forwards that overlap, so a forward measured beside
    another one would count the sharing twice. All the rows where that leaves no line to fit:
    rows without entry times (older runs), or alone forwards at fewer than two prompt lengths."""
    timed = [r for r in rows if "prefill_forward" in r and "prefill_entry" in r]
    if len(timed) < len(rows):
        return rows
    starts = [_forward_start(r) for r in timed]
    spans = [(a, a + r["prefill_forward"]) for a, r in zip(starts, timed)]
    alone = []
    for i, (a, b) in enumerate(spans):
        shared = sum(max(0.0, min(b, d) - max(a, c)) for j, (c, d) in enumerate(spans) if j != i)
        if shared < most_overlap * (b - a):
            alone.append(timed[i])
    return alone if len({r["prompt_tokens"] for r in alone}) >= 2 else rows


def prefill_line(rows: list[dict]) -> tuple[list[float], list[float]]:
    """The least-squares line of forward seconds on prompt tokens, at the shortest and longest."""
    xs = [r["prompt_tokens"] for r in rows if "prefill_forward" in r]
    ys = [r["prefill_forward"] for r in rows if "prefill_forward" in r]
    if len(set(xs)) < 2:
        raise ValueError("the run logged no prefill forward times at two prompt lengths")
    slope, intercept = statistics.linear_regression(xs, ys)
    lo, hi = min(xs), max(xs)
    return [float(lo), float(hi)], [max(0.0, intercept + slope * lo), max(0.0, intercept + slope * hi)]


def _measured(rows: list[dict]) -> tuple[float, float]:
    """Means of the handshake (with the allocation) and of the wait for the KV (with the pick-up)."""
    handshake = statistics.fmean(r["handshake"] + r.get("alloc_wait", 0.0) for r in rows)
    kv = statistics.fmean(r["kv_wait"] + r.get("pickup", 0.0) for r in rows)
    return handshake, kv


def calibrate(
    result: dict, mode: str, steps: Profile, overhead: float, rounds: int = 4, name: str = ""
) -> FirstTokenCosts:
    rows = result[mode]["ttft_stage_rows"]
    if not rows:
        raise ValueError(f"{mode}: no request time stats (servers started without them?)")
    lens, seconds = prefill_line(alone_on_the_core(rows))
    handshake, kv = _measured(rows)
    ttft = statistics.fmean(r["ttft_s"] for r in result[mode]["records"] if r["error"] is None)
    costs = FirstTokenCosts(0.0, 0.0, max(0.0, ttft - handshake - kv), lens, seconds)
    for _ in range(rounds):  # each fixed part moves the waits a little: a few rounds settle it
        _, sim = simulate(
            result, mode, costs.profile(steps), overhead=overhead, first_token=costs.shape_fields()
        )
        sim_handshake = statistics.fmean(h for h, _ in sim.stages.values())
        sim_kv = statistics.fmean(k for _, k in sim.stages.values())
        sim_ttft = statistics.fmean(r.ttft_s for r in sim.records if r.ttft_s is not None)
        costs = msgspec.structs.replace(
            costs,
            handshake_s=max(0.0, costs.handshake_s + handshake - sim_handshake),
            transfer_s=max(0.0, costs.transfer_s + kv - sim_kv),
            first_token_s=max(0.0, costs.first_token_s + ttft - sim_ttft),
        )
    return msgspec.structs.replace(costs, source=f"{mode} of run {name}" if name else mode)


def predict(result: dict, mode: str, steps: Profile, overhead: float, costs: FirstTokenCosts) -> dict:
    """The run's summary as the simulator predicts it with `costs` (and its stages' means)."""
    summary, sim = simulate(
        result, mode, costs.profile(steps), overhead=overhead, first_token=costs.shape_fields()
    )
    summary["stages_mean"] = {
        "handshake": statistics.fmean(h for h, _ in sim.stages.values()),
        "kv_wait": statistics.fmean(k for _, k in sim.stages.values()),
    }
    return summary


def validation(result: dict, other: dict, other_name: str, this_name: str = "this run") -> dict:
    """Per mode: costs calibrated on `other` (its logged decode steps and request time stats),
    predicting `result` (out of sample) and `other` itself (in sample): TTFT p50 / p90 and the
    stages' means, measured against predicted."""
    steps = calibrations(other)["logged steps, this run"]
    overhead = sharing_overhead(other, msgspec.convert(other["sun"]["profile"], Profile))
    out: dict = {"calibrated_on": other_name, "modes": {}}
    for mode in ("sun", "conventional"):
        costs = calibrate(other, mode, steps, overhead, name=other_name)
        rows: dict = {"costs": msgspec.to_builtins(costs)}
        for label, run in ((this_name, result), (f"run {other_name}", other)):
            got = predict(run, mode, steps, overhead, costs)
            measured = run[mode]["summary"]["ttft_s"]
            handshake, kv = _measured(run[mode]["ttft_stage_rows"])
            rows[label] = {
                "ttft_p50_s": _pair(measured["p50"], got["ttft_s"]["p50"]),
                "ttft_p90_s": _pair(measured["p90"], got["ttft_s"]["p90"]),
                "handshake_mean_s": _pair(handshake, got["stages_mean"]["handshake"]),
                "kv_wait_mean_s": _pair(kv, got["stages_mean"]["kv_wait"]),
            }
        out["modes"][mode] = rows
    return out


def _pair(measured: float, predicted: float) -> dict:
    error = (predicted - measured) / measured if measured else None
    return {"measured": measured, "predicted": predicted, "error": error}


def section(val: dict, this_name: str = "this run") -> list[str]:
    """The page's part for one run: the first-token costs calibrated on the other run, and the
    TTFT they predict for this one (out of sample) and for the calibration run (in sample)."""
    other = val["calibrated_on"]
    out = [
        f"### First-token time, calibrated on run `{other}`",
        "",
        "Stages from the servers' request time stats (`--enable-request-time-stats-logging`): the"
        " handshake (decode pre-allocation until the prefill server has the KV's place), the wait for"
        " the KV (prefill queue, forward, transfer and the decode's pick-up); both wait for a decode"
        " step to end when the decode server is busy, which the simulator models. Fitted on the other"
        " run, per mode:",
        "",
    ]
    for mode, rows in val["modes"].items():
        c = rows["costs"]
        line = ", ".join(
            f"{n:.0f} tokens {s * 1e3:.0f} ms" for n, s in zip(c["prefill_lens"], c["prefill_seconds"])
        )
        out.append(
            f"- {mode}: handshake {c['handshake_s'] * 1e3:.1f} ms, transfer and pick-up"
            f" {c['transfer_s'] * 1e3:.1f} ms, outside the servers' stages {c['first_token_s'] * 1e3:.1f} ms;"
            f" prefill forward {line}"
        )
    labels = [k for k in next(iter(val["modes"].values())) if k != "costs"]
    head = " | ".join(f"{label}: measured / predicted (error)" for label in labels)
    out += ["", f"| mode | figure | {head} |", "|---|---|" + "---|" * len(labels)]
    for mode, rows in val["modes"].items():
        for fig in rows[labels[0]]:
            cells = []
            for label in labels:
                g = rows[label][fig]
                err = "-" if g["error"] is None else f"{g['error']:+.1%}"
                cells.append(f"{g['measured'] * 1e3:.0f} / {g['predicted'] * 1e3:.0f} ms ({err})")
            out.append(f"| {mode} | {fig} | " + " | ".join(cells) + " |")
    return out + [""]
