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
import sys
import urllib.request
from importlib import metadata

import msgspec

from sun_sglang.bench import loadgen, summary
from sun_sglang.bench.workload import Lengths, WorkloadConfig


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


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.bench")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="drive an endpoint with a workload")
    r.add_argument("--url", required=True, help="the gateway, e.g. http://127.0.0.1:8000")
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
    r.add_argument("--slo-ttft-s", type=float)
    r.add_argument("--slo-tpot-s", type=float)
    r.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"))
    r.add_argument("--out", help="write the JSON result here")
    r.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


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
    if "tasks" not in fields:
        models = json.loads(_get(f"{args.url.rstrip('/')}/v1/models"))["data"]
        fields["tasks"] = [m["id"] for m in models]
    return msgspec.convert(fields, WorkloadConfig)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    cfg = workload(args)
    try:
        workers = summary.workers_from_metrics(_get(f"{args.url.rstrip('/')}/metrics"))
    except OSError:
        workers = {}  # not a SUN gateway: no per-worker figures
    decode = sum(n for pool, n in workers.items() if pool.split(":")[0] == "decode")
    total = sum(workers.values())
    records, wall = asyncio.run(loadgen.run(cfg, args.url, args.api_key, progress=not args.quiet))
    slo = {"slo_ttft_s": args.slo_ttft_s, "slo_tpot_s": args.slo_tpot_s}
    overall = summary.summarize(records, wall, decode, total, **slo)
    result = {
        "config": msgspec.to_builtins(cfg),
        "target": args.url,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "machine": platform.machine()},
        "versions": _versions(),
        "workers": workers,
        "summary": overall,
        "per_task": summary.per_task(records, wall, **slo),
        "records": [dataclasses.asdict(r) for r in records],
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps({k: overall[k] for k in ("requests", "errors", "req_s", "output_tok_s")}))
    print(json.dumps({k: overall[k] for k in ("ttft_s", "tpot_s", "latency_s", "goodput_req_s")}))


if __name__ == "__main__":
    main()
