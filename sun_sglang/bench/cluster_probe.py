"""Start-up time, memory per server and one request's latency for a local SUN cluster.

    python -m sun_sglang.bench.cluster_probe --config launch/local-smollm2.yaml [--requests 5]

Prints a table with its conditions: machine, backend, dtype, prompt and output lengths.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import urllib.request
from pathlib import Path

import msgspec
import psutil

from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.plan import plan
from sun_sglang.launch.process import ManagedProcess
from sun_sglang.paths import home

QUESTION = "Write a short poem about the sea."


def group_memory_mb(proc: ManagedProcess) -> tuple[float, float]:
    """(PSS, RSS) of a server and every process of its group (scheduler, detokenizer), MiB.
    PSS splits shared pages between the processes that map them; RSS counts them in each."""
    pss = rss = 0
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == proc.pid:
                info = p.memory_full_info()
                pss, rss = pss + info.pss, rss + info.rss
        except (psutil.Error, ProcessLookupError):
            continue
    return pss / 2**20, rss / 2**20


def one_request(url: str, task: str, max_tokens: int) -> tuple[float, int, int]:
    body = {
        "model": task,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    req = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        usage = json.loads(resp.read())["usage"]
    return time.perf_counter() - t0, usage["prompt_tokens"], usage["completion_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="launch/local-smollm2.yaml")
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--transfer-backend", choices=["mooncake_tcp", "mooncake", "nixl"])
    args = parser.parse_args()
    config = cluster_config.load(args.config)
    if args.transfer_backend:
        config = msgspec.structs.replace(config, transfer_backend=args.transfer_backend)
    cluster_plan = plan(config, "cpu" if config.device == "auto" else config.device)
    logs = home() / "logs" / f"probe-{time.strftime('%Y%m%d-%H%M%S')}"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; backend {config.transfer_backend}; "
        f"dtype {cluster_plan.servers[0].dtype}; base {Path(cluster_plan.servers[0].model_path).name}"
    )
    with Cluster(cluster_plan, logs, config.startup_timeout_s) as cluster:
        print("\nstart-up (s from launch to healthy, servers started together):")
        for name, secs in cluster.startup_s.items():
            print(f"  {name:24s} {secs:6.1f}")
        print("\nmemory per server (MiB, whole process group): PSS, RSS")
        for proc in cluster.procs:
            pss, rss = group_memory_mb(proc)
            print(f"  {proc.name:24s} {pss:8.0f} {rss:8.0f}")
        for task in config.tasks:
            one_request(cluster.gateway_url, task, 4)  # first request warms caches
            runs = [one_request(cluster.gateway_url, task, args.max_tokens) for _ in range(args.requests)]
            lat = [r[0] for r in runs]
            print(
                f"\n{task}: one request at a time, prompt {runs[0][1]} tokens, {runs[0][2]} new tokens: "
                f"latency median {statistics.median(lat):.2f} s, min {min(lat):.2f} s, "
                f"max {max(lat):.2f} s ({args.requests} runs; "
                f"{runs[0][2] / statistics.median(lat):.1f} tok/s end to end)"
            )


if __name__ == "__main__":
    main()
