"""SUN against conventional disaggregation on the real cluster, same workload, same cores.

One cluster file gives the tasks and the base. Each mode gets its own cluster, started in turn:
`sun` (one shared decode pool of `sun_decode` base servers) and `conventional` (each task its own
`conventional_decode` decode servers holding the task model). Every server runs under taskset:
prefill servers, gateway and load generator on `pins.prefill`, all decode servers on `pins.decode`,
so both modes get the same decode cores. The SUN cluster is also profiled (step times for the
simulator), and every decode server logs each step (`step_log`: step times under the run's own
open-loop load). Decode batch composition comes from the gateway's access log (which task ran on
which decode server, and when) and the decode servers' own "#running-req" log lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import msgspec

from sun_sglang.bench import loadgen, profile, summary, time_stats
from sun_sglang.bench.step_log import STEP_LOG_ARGS, decode_steps
from sun_sglang.bench.time_stats import TIME_STATS_ARGS
from sun_sglang.bench.workload import WorkloadConfig
from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.config import CpuPins, DecodeConfig
from sun_sglang.launch.plan import plan
from sun_sglang.launch.roles import device_for

PINS = CpuPins(prefill="0", decode="1", gateway="0")
_RUNNING = re.compile(r"Decode batch.*?#running-req: (\d+)")


def decode_mixing(access_log: Path) -> dict[str, dict]:
    """Per decode server, from the gateway's access log: the share of its decoding time during
    which requests of two or more tasks were in its running batch, and the most tasks at once.
    SGLang decodes every running request of a server in one batch per step."""
    spans: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for line in access_log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec.get("status") != 200 or not rec.get("decode") or rec.get("ttft_ms") is None:
            continue
        start = rec["ts"] + rec["ttft_ms"] / 1e3
        end = rec["ts"] + rec["latency_ms"] / 1e3
        spans[rec["decode"]] += [(start, 1, rec["task"]), (end, -1, rec["task"])]
    out = {}
    for server, events in spans.items():
        events.sort(key=lambda e: (e[0], e[1]))
        live: dict[str, int] = defaultdict(int)
        busy = mixed = 0.0
        most, last = 0, events[0][0]
        for t, step, task in events:
            tasks_now = sum(1 for n in live.values() if n > 0)
            busy += (t - last) if tasks_now else 0.0
            mixed += (t - last) if tasks_now >= 2 else 0.0
            live[task] += step
            most, last = max(most, sum(1 for n in live.values() if n > 0)), t
        out[server] = {"mixed_time_share": mixed / busy if busy else 0.0, "most_tasks_at_once": most}
    return out


def prefill_requests(access_log: Path, since: float = 0.0) -> dict[str, int]:
    """Answered requests per prefill server sent from unix time `since` on (the load, not the
    profile before it), from the gateway's access log."""
    lines = [json.loads(line) for line in access_log.read_text().splitlines() if line.startswith("{")]
    return dict(
        Counter(
            r["prefill"] for r in lines if r.get("status") == 200 and r.get("prefill") and r["ts"] >= since
        )
    )


def most_running(log: Path) -> int:
    """The largest "#running-req" a decode server logged."""
    return max((int(n) for n in _RUNNING.findall(log.read_text(errors="replace"))), default=0)


def run_mode(
    base: cluster_config.ClusterConfig,
    mode: str,
    decode_replicas: int,
    pins: CpuPins,
    workload: WorkloadConfig,
    log_dir: Path,
    with_profile: bool,
    prefill_policy: str | None = None,
) -> dict:
    router = (
        base.router
        if prefill_policy is None
        else msgspec.structs.replace(base.router, prefill_policy=prefill_policy)
    )
    cfg = msgspec.structs.replace(
        base,
        router=router,
        mode=mode,
        decode=DecodeConfig(decode_replicas),
        cpus=pins,
        prefill_args=[*base.prefill_args, *TIME_STATS_ARGS],
        decode_args=[*base.decode_args, *STEP_LOG_ARGS, *TIME_STATS_ARGS],
    )
    cluster = Cluster(plan(cfg, device_for(cfg.device)), log_dir, 600)
    result: dict = {"mode": mode, "decode_replicas": decode_replicas}
    with cluster:
        url = cluster.gateway_url
        workers = summary.workers_from_metrics(loadgen.get_text(f"{url}/metrics"))
        if with_profile and mode == "sun":
            result["profile"] = msgspec.to_builtins(profile.measure_sync(url, workload.tasks[0]))
        elif with_profile:  # conventional: what decode servers sharing a core cost each other
            tpot = asyncio.run(profile.measure_sharing(url, list(workload.tasks)))
            result["sharing"] = {"servers": len(workload.tasks), "tpot_batch1_s": tpot}
        load_started = time.time()  # the profile's steps above are in the decode logs too
        records, wall = asyncio.run(loadgen.run(workload, url, progress=False))
        result["startup_s"] = cluster.startup_s
    result["workers"] = workers
    decode = summary.decode_workers(workers)
    result["summary"] = summary.summarize(records, wall, decode, sum(workers.values()))
    result["per_task"] = summary.per_task(records, wall)
    result["prefill_policy"] = cfg.router.prefill_policy
    if workload.multi_turn:
        result["per_turn"] = summary.per_turn(records)
    result["records"] = [msgspec.to_builtins(r.__dict__) for r in records]
    result["decode_mixing"] = decode_mixing(log_dir / "gateway.log")
    result["prefill_requests"] = prefill_requests(log_dir / "gateway.log", load_started)
    logs = sorted(log_dir.glob("decode-*.log"))
    result["decode_most_running"] = {p.stem: most_running(p) for p in logs}
    result["load_started"] = load_started
    result["decode_steps"] = {p.stem: decode_steps(p.read_text(errors="replace"), load_started) for p in logs}
    prefill_logs = [p.read_text(errors="replace") for p in sorted(log_dir.glob("prefill-*.log"))]
    rows = time_stats.stages(prefill_logs, [p.read_text(errors="replace") for p in logs], load_started)
    result["ttft_stages"] = time_stats.summary(rows)  # where the load's first-token time went
    result["ttft_stage_rows"] = list(rows.values())
    return result


def ratios(sun: dict, conv: dict) -> dict[str, float | None]:
    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    s, c = sun["summary"], conv["summary"]
    return {
        "output_tok_s": div(s["output_tok_s"], c["output_tok_s"]),
        "output_tok_s_per_decode_worker": div(
            s["output_tok_s_per_decode_worker"], c["output_tok_s_per_decode_worker"]
        ),
        "output_tok_s_per_worker": div(s["output_tok_s_per_worker"], c["output_tok_s_per_worker"]),
        "tpot_p50": div(s["tpot_s"]["p50"], c["tpot_s"]["p50"]),
        "tpot_p90": div(s["tpot_s"]["p90"], c["tpot_s"]["p90"]),
        "ttft_p50": div(s["ttft_s"]["p50"], c["ttft_s"]["p50"]),
    }


def compare(
    cluster_file: str,
    workload: WorkloadConfig,
    out_dir: Path,
    sun_decode: int = 1,
    conventional_decode: int = 1,
    pins: CpuPins = PINS,
    prefill_policy: str | None = None,
) -> dict:
    base = cluster_config.load(cluster_file)
    if pins.gateway:  # the load generator shares the gateway's cores
        os.sched_setaffinity(0, cpu_set(pins.gateway))
    sun = run_mode(base, "sun", sun_decode, pins, workload, out_dir / "sun", True, prefill_policy)
    conv_dir = out_dir / "conventional"
    conv = run_mode(base, "conventional", conventional_decode, pins, workload, conv_dir, True, prefill_policy)
    return {
        "cluster": cluster_file,
        "workload": msgspec.to_builtins(workload),
        "pins": msgspec.to_builtins(pins),
        "sun": sun,
        "conventional": conv,
        "ratios_sun_over_conventional": ratios(sun, conv),
    }


def cpu_set(spec: str) -> set[int]:
    cpus: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus
