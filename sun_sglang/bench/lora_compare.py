"""SUN-LoRA against multi-LoRA serving on the real CPU cluster: the same adapter tasks, workload
and cores (issue 19, part 1).

    python -m sun_sglang.bench lora-compare --adapters 4,16 --out-dir DIR

For each adapter count, random rank-16 adapters on SmolLM2-135M (`lora_scale.make_adapters`; what
an adapter costs does not depend on its values), three cases in turn:
- `sun`: one multi-LoRA prefill server holding every adapter; the decode server runs the plain base;
- `multi_lora`: the same prefill server; the decode server holds every adapter too and runs LoRA
  batches (launch mode multi_lora: the gateway names the adapter on both legs);
- `single`: one non-disaggregated `--enable-lora` server, SGLang's own OpenAI layer (a request
  names `base:taskNN`); its prefills run between its decode steps.
Pins: prefill server, gateway and load generator on `pins.prefill`; the decode server, or the single
server, on `pins.decode`. Each case is measured twice:
- the step profile: closed loops of one request per slot, `batch` requests spread evenly over
  `adapters` tasks, so that the running batch holds exactly that many adapters; TPOT's median is
  the decode step time at that batch and adapter count;
- the open-loop run: the workload (Zipf over the tasks), TTFT, TPOT and output tok/s per decode server.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import msgspec

from sun_sglang.bench import loadgen, summary
from sun_sglang.bench.lora_scale import lora_cluster, make_adapters
from sun_sglang.bench.profile import PROMPT_WORDS, closed_loop
from sun_sglang.bench.step_log import STEP_LOG_ARGS, decode_steps
from sun_sglang.bench.workload import Lengths, WorkloadConfig
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.config import ClusterConfig, CpuPins, DecodeConfig
from sun_sglang.launch.plan import plan
from sun_sglang.launch.process import ManagedProcess, wait_healthy
from sun_sglang.launch.roles import ServerSpec
from sun_sglang.models import prepare

CASES = ("sun", "multi_lora", "single")
MIXES = ((1, 1), (4, 1), (4, 4), (8, 1), (8, 8))  # (batch, adapters in it: at most the tasks)
SERVED = "base"  # the single server's model name: requests name "base:taskNN"
# PD decode pre-allocates prompt + 512 reserved tokens a request: 4,096 (the CPU default) holds 7,
# so the profile's batch 8 would run as 7 on the PD cases and as 8 on the single server
KV_TOKENS = 8192


async def step_time(url: str, tasks: list[str], batch: int, adapters: int, out: int = 32) -> float:
    """Median TPOT of `batch` closed-loop requests spread over the first `adapters` tasks."""
    each = batch // adapters
    loops = [closed_loop(url, t, each, 3 * each, PROMPT_WORDS, out) for t in tasks[:adapters]]
    runs = await asyncio.gather(*loops)
    return statistics.median(r.tpot_s for records in runs for r in records if r.tpot_s is not None)


def measure(url: str, tasks: list[str], workload: WorkloadConfig) -> dict:
    mixes = [(b, min(a, len(tasks))) for b, a in MIXES]  # 4 adapters: batch 8 of 4 adapters
    profile = [
        {"batch": b, "adapters": a, "step_s": asyncio.run(step_time(url, tasks, b, a))} for b, a in mixes
    ]
    started = time.time()
    records, wall = asyncio.run(
        loadgen.run(msgspec.structs.replace(workload, tasks=tasks), url, progress=False)
    )
    return {
        "profile": profile,
        "load_started": started,
        "summary": summary.summarize(records, wall, 1, 1),
        "records": [msgspec.to_builtins(r.__dict__) for r in records],
    }


def pd_case(mode: str, config: ClusterConfig, workload: WorkloadConfig, log_dir: Path) -> dict:
    cfg = msgspec.structs.replace(
        config, mode=mode, decode=DecodeConfig(1), decode_args=[*config.decode_args, *STEP_LOG_ARGS]
    )
    with Cluster(plan(cfg, "cpu"), log_dir, cfg.startup_timeout_s) as cluster:
        startup_s = cluster.startup_s
        result = measure(cluster.gateway_url, sorted(cfg.tasks), workload)
    (log,) = sorted(log_dir.glob("decode-*.log"))
    return {
        **result,
        "startup_s": startup_s,
        "decode_steps": decode_steps(log.read_text(), result["load_started"]),
    }


def single_spec(config: ClusterConfig, port: int) -> ServerSpec:
    """The SUN cluster's multi-LoRA prefill server as planned (its adapters, rank and modules), run
    not disaggregated (SGLang's mode "null") on the decode cores."""
    (prefill,) = [s for s in plan(config, "cpu").servers if s.role == "prefill"]
    options = msgspec.structs.replace(
        prefill.options, cpus=config.cpus.decode, extra_args=[*prefill.options.extra_args, *STEP_LOG_ARGS]
    )
    return msgspec.structs.replace(
        prefill, role="null", name="single", port=port, bootstrap_port=None, options=options,
        served_model_name=SERVED, dist_port=port + 1,
    )  # fmt: skip


def single_case(config: ClusterConfig, workload: WorkloadConfig, log_dir: Path, port: int) -> dict:
    spec = single_spec(config, port)
    proc = ManagedProcess("single", spec.argv(), spec.env(), log_dir / "single.log", f"{spec.url}/health")
    started = time.monotonic()
    proc.start()
    try:
        wait_healthy([proc], timeout_s=config.startup_timeout_s)
        startup_s = time.monotonic() - started
        assert spec.lora is not None
        result = measure(spec.url, [f"{SERVED}:{name}" for name in sorted(spec.lora.adapters)], workload)
    finally:
        proc.stop()
    steps = decode_steps((log_dir / "single.log").read_text(), result["load_started"])
    return {**result, "startup_s": startup_s, "decode_steps": steps}


def lora_compare(
    counts: list[int], rank: int, workload: WorkloadConfig, out_dir: Path, pins: CpuPins
) -> dict:
    """Every case of every count, each saved to `out_dir/lora_compare.json` as it finishes; a rerun
    with the same settings goes on from the cases already there (a run is about 8 min a case)."""
    settings = {"workload": msgspec.to_builtins(workload), "pins": msgspec.to_builtins(pins), "rank": rank}
    saved = out_dir / "lora_compare.json"
    result = json.loads(saved.read_text()) if saved.exists() else {}
    if {k: result.get(k) for k in settings} != settings:
        result = {**settings, "runs": []}
    base = prepare("smollm2-135m")
    paths = make_adapters(base, max(counts), rank, out_dir / "adapters")
    for n in counts:
        config = msgspec.structs.replace(
            lora_cluster(base, paths[:n], rank, pins, 37000), max_total_tokens=KV_TOKENS
        )
        row = next((r for r in result["runs"] if r["adapters"] == n), None)
        if row is None:
            row = {"adapters": n}
            result["runs"].append(row)
        for case in (c for c in CASES if c not in row):
            log_dir = out_dir / f"{n}-{case}"
            row[case] = (
                single_case(config, workload, log_dir, 37500)
                if case == "single"
                else pd_case(case, config, workload, log_dir)
            )
            saved.write_text(json.dumps(result, indent=1))
    return result


DEFAULT_WORKLOAD = WorkloadConfig(
    tasks=["placeholder"],  # the cases' own
    popularity="zipf",
    zipf_alpha=1.0,
    arrival="poisson",
    rate=1.0,
    concurrency=16,
    num_requests=60,
    prompt_words=Lengths(32, 64),
    output_tokens=Lengths(32, 32),
)


def batch_within(profile: list[dict], tpot_s: float) -> float | None:
    """The largest batch whose step takes at most `tpot_s`, by straight lines between the profile's
    most mixed points (each batch over as many adapters as it can hold), at most the largest batch
    measured; None where even batch 1 is slower."""
    most = max(p["adapters"] for p in profile)
    points = sorted((p["batch"], p["step_s"]) for p in profile if p["adapters"] == min(p["batch"], most))
    if tpot_s < points[0][1]:
        return None
    for (b0, s0), (b1, s1) in reversed(list(zip(points, points[1:]))):
        if s1 <= tpot_s:
            return float(b1)
        if s0 <= tpot_s:
            return b0 + (b1 - b0) * (tpot_s - s0) / (s1 - s0)
    return float(points[0][0])


def at_same_tpot(run: dict) -> dict[str, float | None]:
    """Decode tok/s per server of each case at the TPOT of SUN's largest mixed batch (None: the
    case cannot hold that TPOT)."""
    tpot = max(p["step_s"] for p in run["sun"]["profile"])
    batches = {case: batch_within(run[case]["profile"], tpot) for case in CASES}
    return {case: None if b is None else b / tpot for case, b in batches.items()}


def report(result: dict) -> str:
    """Markdown: the step profile (ms, and tok/s per decode server) and the open-loop figures."""
    head = [f"batch {b}, {'one adapter' if a == 1 else 'mixed'}" for b, a in MIXES]
    lines = ["| adapters | case | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(MIXES)]
    for run in result["runs"]:
        for case in CASES:
            cells = [
                f"{p['step_s'] * 1e3:.1f} ms, {p['batch'] / p['step_s']:.0f} tok/s"
                + ("" if p["adapters"] == 1 else f" ({p['adapters']} adapters)")
                for p in run[case]["profile"]
            ]
            lines.append(f"| {run['adapters']} | {case} | " + " | ".join(cells) + " |")
    lines += ["", "| adapters | TPOT (SUN's batch 8) | " + " | ".join(f"{c} tok/s" for c in CASES) + " |"]
    lines.append("|---|---|" + "---|" * len(CASES))
    for run in result["runs"]:
        tpot, rates = max(p["step_s"] for p in run["sun"]["profile"]), at_same_tpot(run)
        sun = rates["sun"] or 1.0
        cells = [f"{r:.0f} ({r / sun:.2f}x)" if r is not None else "cannot hold it" for r in rates.values()]
        lines.append(f"| {run['adapters']} | {tpot * 1e3:.0f} ms | " + " | ".join(cells) + " |")
    lines += ["", "| adapters | case | output tok/s | TTFT p50 / p90 (s) | TPOT p50 / p90 (ms) | errors |"]
    lines.append("|---|---|---|---|---|---|")
    for run in result["runs"]:
        for case in CASES:
            s = run[case]["summary"]
            ttft, tpot = s["ttft_s"], s["tpot_s"]
            lines.append(
                f"| {run['adapters']} | {case} | {s['output_tok_s']:.1f} | "
                f"{ttft['p50']:.2f} / {ttft['p90']:.2f} | "
                f"{tpot['p50'] * 1e3:.0f} / {tpot['p90'] * 1e3:.0f} | {s['errors']} |"
            )
    return "\n".join(lines)
