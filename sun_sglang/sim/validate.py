"""The simulator against a measured CPU cluster run (`python -m sun_sglang.bench compare`).

Calibration, each in turn: the step-time profile measured on the SUN cluster's decode server
(closed loops through the gateway); the decode steps that server logged during the run itself
(open-loop load, `bench.step_log`); and those logged during another run (a prediction out of
sample). Prediction: the same requests (the workload's planned arrivals, the prompt
lengths the servers counted, the output lengths they produced) through a simulated cluster of the
same shape: prefill servers sharing the prefill core, decode servers sharing the decode core. The
error of each figure is (predicted - measured) / measured."""

from __future__ import annotations

import msgspec

from sun_sglang.bench import summary
from sun_sglang.bench.step_log import step_profile
from sun_sglang.bench.workload import WorkloadConfig, plan
from sun_sglang.sim.costs import Profile
from sun_sglang.sim.engine import Simulator
from sun_sglang.sim.shape import ClusterShape, SimRequest

SGLANG_PD_ADMISSION = {"prealloc_between_steps": True, "reserved_decode_tokens": 512}  # SGLang's defaults

FIGURES = {
    "req_s": lambda s: s["req_s"],
    "output_tok_s": lambda s: s["output_tok_s"],
    "tpot_p50_s": lambda s: s["tpot_s"]["p50"],
    "tpot_p90_s": lambda s: s["tpot_s"]["p90"],
    "ttft_p50_s": lambda s: s["ttft_s"]["p50"],
    "ttft_p90_s": lambda s: s["ttft_s"]["p90"],
    "latency_p50_s": lambda s: s["latency_s"]["p50"],
}


def sharing_overhead(result: dict, profile: Profile) -> float:
    """Decode servers on one core, each at batch 1, against perfect sharing of the core (1.0)."""
    sharing = result["conventional"].get("sharing")
    if not sharing:
        return 1.0
    return sharing["tpot_batch1_s"] / (sharing["servers"] * profile.decode_step_s(1, 0))


def simulate(
    result: dict,
    mode: str,
    profile: Profile,
    kv_capacity_tokens: int = 4096,
    overhead: float = 1.0,
    first_token: dict | None = None,
) -> tuple[dict, Simulator]:
    """The run's requests through a simulated cluster of its shape: the summary, and the simulator
    (its per-request stages). `first_token`: ClusterShape's first-token costs (sim.ttft)."""
    workload = msgspec.convert(result["workload"], WorkloadConfig)
    run = result[mode]
    at = {r.index: r.at_s for r in plan(workload)}
    reqs = [
        SimRequest(r["index"], r["task"], at[r["index"]], r["prompt_tokens"], r["output_tokens"])
        for r in run["records"]
        if r["error"] is None
    ]
    shape = ClusterShape(
        tasks=list(workload.tasks),
        mode=mode,  # type: ignore[arg-type]
        decode_workers=run["decode_replicas"],
        kv_capacity_tokens=kv_capacity_tokens,
        prefill_cores=1,
        decode_cores=1,
        decode_core_overhead=overhead,
        decode_idle_spin=True,  # SGLang's schedulers poll while idle (no --sleep-on-idle here)
        **{**SGLANG_PD_ADMISSION, **(first_token or {})},
    )
    closed = workload.concurrency if workload.arrival == "closed" else None
    sim = Simulator(shape, profile, profile, closed_concurrency=closed, client_cap=workload.concurrency)
    records, wall = sim.run(reqs)
    return summary.summarize(records, wall, shape.decode_worker_count, shape.worker_count), sim


def predict(
    result: dict, mode: str, profile: Profile, kv_capacity_tokens: int = 4096, overhead: float = 1.0
) -> dict:
    return simulate(result, mode, profile, kv_capacity_tokens, overhead)[0]


def calibrations(result: dict, other: dict | None = None, other_name: str = "") -> dict[str, Profile]:
    closed = msgspec.convert(result["sun"]["profile"], Profile)
    out = {"closed-loop profile": closed}
    for name, run in (("this run", result), (f"run {other_name}", other)):
        if run is None or not run["sun"].get("decode_steps"):
            continue
        steps = [tuple(s) for server in run["sun"]["decode_steps"].values() for s in server]
        source = f"decode steps logged by the SUN decode server during {name}"
        out[f"logged steps, {name}"] = step_profile(steps, closed, source=source)  # type: ignore[arg-type]
    return out


def validate(result: dict, other: dict | None = None, other_name: str = "") -> dict:
    closed = msgspec.convert(result["sun"]["profile"], Profile)
    overhead = sharing_overhead(result, closed)  # the sharing probe is closed-loop, like `closed`
    out: dict = {"decode_core_overhead": overhead, "calibrations": {}}
    for name, profile in calibrations(result, other, other_name).items():
        out["calibrations"][name] = _against(result, profile, overhead)
    if other is not None and all(
        r[m].get("ttft_stage_rows") for r in (result, other) for m in ("sun", "conventional")
    ):
        from sun_sglang.sim import ttft

        out["first_token"] = ttft.validation(result, other, other_name)
    return out


def _against(result: dict, profile: Profile, overhead: float) -> dict:
    out: dict = {"profile": msgspec.to_builtins(profile), "modes": {}}
    for mode in ("sun", "conventional"):
        measured, predicted = result[mode]["summary"], predict(result, mode, profile, overhead=overhead)
        out["modes"][mode] = {
            name: {
                "measured": get(measured),
                "predicted": get(predicted),
                "error": (get(predicted) - get(measured)) / get(measured) if get(measured) else None,
            }
            for name, get in FIGURES.items()
        }
    modes = out["modes"]
    out["sun_over_conventional"] = {
        name: {
            which: modes["sun"][name][which] / modes["conventional"][name][which]
            for which in ("measured", "predicted")
        }
        for name in ("output_tok_s", "tpot_p50_s", "latency_p50_s")
    }
    return out
