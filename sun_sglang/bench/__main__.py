"""python -m sun_sglang.bench run --url http://127.0.0.1:8000 [workload options] [--out result.json]

Drives an OpenAI-compatible endpoint (the SUN gateway, or any other) with a multi-task workload,
streams every request, prints a summary and writes one JSON result: configuration, machine,
versions, worker counts, summary (overall and per task) and every request's record."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import signal
import sys
from importlib import metadata
from pathlib import Path

import msgspec

from sun_sglang.bench import compare, loadgen, lora_compare, lora_scale, summary
from sun_sglang.bench.soak import plot as soak_plot
from sun_sglang.bench.soak import soak
from sun_sglang.bench.workload import Lengths, WorkloadConfig
from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.config import CpuPins
from sun_sglang.launch.plan import plan
from sun_sglang.launch.roles import device_for
from sun_sglang.machine import cpu_model


def _lengths(text: str) -> Lengths:
    low, _, high = text.partition(":")
    return Lengths(int(low), int(high or low))


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for dist in ("sun-sglang", "sglang", "torch", "aiohttp"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.bench")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="drive an endpoint with a workload")
    r.add_argument("--url", required=True, help="the gateway, e.g. http://127.0.0.1:8000")
    _workload_flags(r)
    r.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"))
    r.add_argument("--out", help="write the JSON result here")
    r.add_argument("--quiet", action="store_true")
    c = sub.add_parser("compare", help="SUN vs conventional clusters, same workload, pinned cores")
    c.add_argument("--cluster", required=True, help="a cluster file (tasks, base, backend)")
    _workload_flags(c)
    c.add_argument("--sun-decode", type=int, default=1, help="decode servers shared by all tasks")
    c.add_argument("--conventional-decode", type=int, default=1, help="decode servers per task")
    c.add_argument("--prefill-cpus", default="0", help="taskset list: prefill servers, gateway, load")
    c.add_argument("--decode-cpus", default="1", help="taskset list: every decode server")
    c.add_argument("--prefill-policy", choices=["cache_aware", "least_load", "round_robin"])
    c.add_argument("--out-dir", required=True, help="logs and result.json go here")
    k = sub.add_parser("soak", help="streaming clients with hang-ups for a bounded time; resources sampled")
    k.add_argument("--cluster", required=True, help="a cluster file; the cluster is started and stopped")
    k.add_argument("--clients", type=int, default=16)
    k.add_argument("--minutes", type=float, default=5.0)
    k.add_argument("--cut-share", type=float, default=0.2, help="share of requests the client hangs up on")
    k.add_argument("--settle-s", type=float, default=120.0)
    k.add_argument("--out-dir", required=True, help="logs and soak.json go here")
    s = sub.add_parser("lora-scale", help="N LoRA tasks on one prefill server vs full-copy prefill modules")
    _workload_flags(s)
    s.add_argument("--adapters", type=int, default=16, help="LoRA tasks on the multi-LoRA prefill server")
    s.add_argument(
        "--full-copies", type=int, default=4, help="tasks of the smaller comparison (LoRA and full)"
    )
    s.add_argument("--rank", type=int, default=16)
    s.add_argument("--prefill-cpus", default="0", help="taskset list: prefill servers, gateway, load")
    s.add_argument("--decode-cpus", default="1", help="taskset list: the decode server")
    s.add_argument("--out-dir", required=True, help="adapters, logs and lora_scale.json go here")
    lc = sub.add_parser("lora-compare", help="SUN-LoRA vs multi-LoRA PD vs one multi-LoRA server, pinned")
    _workload_flags(lc)
    lc.add_argument("--adapters", default="4,16", help="adapter counts, one comparison each")
    lc.add_argument("--rank", type=int, default=16)
    lc.add_argument("--prefill-cpus", default="0", help="taskset list: prefill server, gateway, load")
    lc.add_argument("--decode-cpus", default="1", help="taskset list: the decode server, or the single one")
    lc.add_argument("--out-dir", required=True, help="adapters, logs and lora_compare.json go here")
    return ap.parse_args(argv)


def _workload_flags(r: argparse.ArgumentParser) -> None:
    r.add_argument("--config", help="a workload file (YAML/JSON, WorkloadConfig fields); flags override")
    r.add_argument("--tasks", help="comma-separated task names (default: the endpoint's /v1/models)")
    r.add_argument("--popularity", choices=["uniform", "zipf"])
    r.add_argument("--zipf-alpha", type=float)
    r.add_argument("--arrival", choices=["poisson", "gamma", "closed"])
    r.add_argument("--rate", type=float, help="requests per second (poisson, gamma)")
    r.add_argument("--burstiness", type=float, help="gamma shape (< 1: burstier than Poisson)")
    r.add_argument("--concurrency", type=int)
    r.add_argument("--num-requests", type=int)
    r.add_argument("--duration-s", type=float)
    r.add_argument("--prompt-source", choices=["synthetic", "tasks"])
    r.add_argument("--prompt-words", type=_lengths, help="N or LOW:HIGH (synthetic prompts)")
    r.add_argument("--task-data", help="task=dataset,... (with --prompt-source tasks)")
    r.add_argument("--output-tokens", type=_lengths, help="N or LOW:HIGH")
    r.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false", default=None)
    r.add_argument("--seed", type=int)
    r.add_argument("--turns", type=_lengths, help="N or LOW:HIGH turns per conversation (multi-turn)")
    r.add_argument("--think-time-s", type=float, help="mean pause between an answer and the next turn")
    r.add_argument("--slo-ttft-s", type=float)
    r.add_argument("--slo-tpot-s", type=float)


def workload(args: argparse.Namespace) -> WorkloadConfig:
    fields: dict = {}
    if args.config:
        with open(args.config, "rb") as f:
            raw = f.read()
        decode = msgspec.yaml.decode if args.config.endswith((".yaml", ".yml")) else msgspec.json.decode
        fields = decode(raw)
    for name in WorkloadConfig.__struct_fields__:
        value = getattr(args, name, None)
        if value is not None and name not in ("tasks", "task_data"):
            fields[name] = value
    if args.tasks:
        fields["tasks"] = args.tasks.split(",")
    if args.task_data:
        fields["task_data"] = dict(pair.split("=", 1) for pair in args.task_data.split(","))
    if "tasks" not in fields and args.command in ("lora-scale", "lora-compare"):
        default = (
            lora_scale.DEFAULT_WORKLOAD if args.command == "lora-scale" else lora_compare.DEFAULT_WORKLOAD
        )
        fields = {**msgspec.to_builtins(default), **fields}  # tasks: per cluster
    if "tasks" not in fields and args.command == "compare":
        fields["tasks"] = list(cluster_config.load(args.cluster).tasks)
    if "tasks" not in fields:
        models = json.loads(loadgen.get_text(f"{args.url.rstrip('/')}/v1/models"))["data"]
        fields["tasks"] = [m["id"] for m in models]
    return msgspec.convert(fields, WorkloadConfig)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    # SIGTERM unwinds like Ctrl-C, so that clusters started here are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.command == "compare":
        return run_compare(args)
    if args.command == "soak":
        return run_soak(args)
    if args.command == "lora-scale":
        return run_lora_scale(args)
    if args.command == "lora-compare":
        return run_lora_compare(args)
    cfg = workload(args)
    try:
        workers = summary.workers_from_metrics(loadgen.get_text(f"{args.url.rstrip('/')}/metrics"))
    except OSError:
        workers = {}  # not a SUN gateway: no per-worker figures
    decode = summary.decode_workers(workers)
    total = sum(workers.values())
    records, wall = asyncio.run(loadgen.run(cfg, args.url, args.api_key, progress=not args.quiet))
    slo = {"slo_ttft_s": args.slo_ttft_s, "slo_tpot_s": args.slo_tpot_s}
    overall = summary.summarize(records, wall, decode, total, **slo)
    result = {
        "config": msgspec.to_builtins(cfg),
        "target": args.url,
        "machine": _machine(),
        "versions": _versions(),
        "workers": workers,
        "summary": overall,
        "per_task": summary.per_task(records, wall, **slo),
        "per_turn": summary.per_turn(records) if cfg.multi_turn else None,
        "records": [dataclasses.asdict(r) for r in records],
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps({k: overall[k] for k in ("requests", "errors", "req_s", "output_tok_s")}))
    print(json.dumps({k: overall[k] for k in ("ttft_s", "tpot_s", "latency_s", "goodput_req_s")}))
    if cfg.multi_turn:
        print(summary.turn_table(result["per_turn"]))


def run_compare(args: argparse.Namespace) -> None:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pins = CpuPins(prefill=args.prefill_cpus, decode=args.decode_cpus, gateway=args.prefill_cpus)
    cfg = workload(args)
    result = compare.compare(
        args.cluster, cfg, out_dir, args.sun_decode, args.conventional_decode, pins, args.prefill_policy
    )
    result["machine"] = _machine()
    result["versions"] = _versions()
    (out_dir / "result.json").write_text(json.dumps(result, indent=1))
    for mode in ("sun", "conventional"):
        s = result[mode]["summary"]
        print(mode, json.dumps({k: s[k] for k in ("requests", "errors", "req_s", "output_tok_s")}))
        print(mode, json.dumps({"tpot_s": s["tpot_s"], "decode_mixing": result[mode]["decode_mixing"]}))
        if cfg.multi_turn:
            print(summary.turn_table(result[mode]["per_turn"]))
    print("sun/conventional", json.dumps(result["ratios_sun_over_conventional"]))


def run_soak(args: argparse.Namespace) -> None:
    out_dir = Path(args.out_dir)
    cfg = cluster_config.load(args.cluster)
    with Cluster(plan(cfg, device_for(cfg.device)), out_dir / "logs", cfg.startup_timeout_s) as cluster:
        report = asyncio.run(
            soak(cluster, args.clients, args.minutes * 60, args.cut_share, settle_s=args.settle_s)
        )
    report["machine"] = _machine()
    report["versions"] = _versions()
    (out_dir / "soak.json").write_text(json.dumps(report, indent=1))
    soak_plot(report, str(out_dir / "soak.png"))
    keys = ("clients", "seconds", "outcomes", "errors", "at_rest", "settle_s", "baseline", "peak", "final")
    print(json.dumps({k: report[k] for k in keys}, indent=1))


def run_lora_scale(args: argparse.Namespace) -> None:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pins = CpuPins(prefill=args.prefill_cpus, decode=args.decode_cpus, gateway=args.prefill_cpus)
    result = lora_scale.lora_scale(args.adapters, args.full_copies, args.rank, workload(args), out_dir, pins)
    result["machine"] = _machine()
    result["versions"] = _versions()
    (out_dir / "lora_scale.json").write_text(json.dumps(result, indent=1))
    print(lora_scale.report(result))


def run_lora_compare(args: argparse.Namespace) -> None:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pins = CpuPins(prefill=args.prefill_cpus, decode=args.decode_cpus, gateway=args.prefill_cpus)
    os.sched_setaffinity(0, compare.cpu_set(args.prefill_cpus))  # the load generator beside the gateway
    counts = [int(n) for n in args.adapters.split(",")]
    result = lora_compare.lora_compare(counts, args.rank, workload(args), out_dir, pins)
    result["machine"] = _machine()
    result["versions"] = _versions()
    (out_dir / "lora_compare.json").write_text(json.dumps(result, indent=1))
    print(lora_compare.report(result))


if __name__ == "__main__":
    main()
