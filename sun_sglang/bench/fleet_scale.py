"""The gateway at fleet scale, on stub servers: T tasks as LoRA adapters on shared multi-LoRA
prefill pools, W workers (half prefill, in pools of up to 8; half decode), one router process.

    python -m sun_sglang.bench.fleet_scale [--tasks 10,100,1000] [--workers 64] [--requests 3000]

Per setting: start-up (process start to /health answering) and memory (VmRSS after start, after
traffic to every task, after adapter churn); the routing decision in-process (the task's prefill
pool choose + the decode pool choose, what the gateway runs per request), end-to-end /generate
latency through the router at concurrency 16; /metrics size and scrape time once every task has
answered; the admin API's adapter load and unload (each of --churn adapters loaded, then unloaded).

Placement (2 cores): the router on core 0; the stubs and this load generator on core 1. The
stubs answer at once, so the latency is the gateway's own plus one stub round trip per leg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from sun_sglang.launch.process import ManagedProcess, stop_all, wait_healthy
from sun_sglang.models import prepare

POOL_SIZE = 8
ADMIN = {"Authorization": "Bearer fleet-admin-token"}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def fleet_config(
    n_tasks: int, prefill: list[str], decode: list[str], base: str, port: int, histograms: bool = True
) -> dict:
    pools = {
        f"pool{i // POOL_SIZE}": [{"url": u, "bootstrap_port": 9} for u in prefill[i : i + POOL_SIZE]]
        for i in range(0, len(prefill), POOL_SIZE)
    }
    names = list(pools)
    tasks = {
        f"t{i:04d}": {"model_path": base, "pool": names[i % len(names)], "adapter": f"t{i:04d}"}
        for i in range(n_tasks)
    }
    return {
        "tasks": tasks,
        "decode": decode,
        "prefill_pools": pools,
        "port": port,
        "admin_token": ADMIN["Authorization"].removeprefix("Bearer "),
        "health_interval_s": 5.0,
        "load_interval_s": 0,  # the stubs have no /v1/loads
        "access_log": None,
        "max_concurrency": 1024,
        "metrics_task_histograms": histograms,
    }


def routing_us(config: dict, requests: int, seed: int = 0) -> float:
    """µs per routing decision (prefill pool choose, decode pool choose) over random tasks, with
    each task's prompts sharing its system prefix (what the cache-aware index tracks)."""
    import msgspec

    from router.config import GatewayConfig
    from router.gateway import Gateway

    gw = Gateway(msgspec.convert(config, GatewayConfig))
    rng = random.Random(seed)
    tasks = list(gw.prefill)
    prompts = {t: [rng.randrange(1, 30000) for _ in range(64)] for t in tasks}
    start = time.perf_counter()
    for _ in range(requests):
        task = rng.choice(tasks)
        prompt = prompts[task] + [rng.randrange(1, 30000) for _ in range(32)]
        gw.prefill[task].choose(prompt, gw.adapters.get(task, ""))
        gw.decode[task].choose()
    return (time.perf_counter() - start) / requests * 1e6


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def traffic(
    url: str, tasks: list[str], requests: int, concurrency: int = 16, scrape_every_s: float = 1.0
) -> list[float]:
    """Every task once, then `requests` to random tasks while /metrics is scraped every
    `scrape_every_s` (as Prometheus would, only more often); the latencies (s) of the random ones."""
    rng = random.Random(1)
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(session: aiohttp.ClientSession, task: str, keep: bool) -> None:
        body = {"model": task, "input_ids": list(range(1, 65)), "sampling_params": {"max_new_tokens": 16}}
        async with limit:
            start = time.perf_counter()
            async with session.post(f"{url}/generate", json=body) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{task}: HTTP {resp.status}")
            if keep:
                latencies.append(time.perf_counter() - start)

    async def scraper(session: aiohttp.ClientSession) -> None:
        while True:
            await asyncio.sleep(scrape_every_s)
            async with session.get(f"{url}/metrics") as resp:
                await resp.read()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, t, False) for t in tasks))
        scraping = asyncio.create_task(scraper(session))
        await asyncio.gather(*(one(session, rng.choice(tasks), True) for _ in range(requests)))
        scraping.cancel()
    return latencies


async def scrape(url: str, times: int = 5) -> tuple[int, float]:
    """/metrics: bytes, median seconds."""
    seconds, size = [], 0
    async with aiohttp.ClientSession() as session:
        for _ in range(times):
            start = time.perf_counter()
            async with session.get(f"{url}/metrics") as resp:
                size = len(await resp.read())
            seconds.append(time.perf_counter() - start)
    return size, statistics.median(seconds)


async def churn(url: str, adapter: Path, n: int) -> tuple[float, float]:
    """Load n new adapter tasks one after another, then unload them: median ms of each call."""
    loads, unloads = [], []
    async with aiohttp.ClientSession(headers=ADMIN) as session:
        for i in range(n):
            body = {"task": f"churn{i:04d}", "pool": "pool0", "path": str(adapter)}
            start = time.perf_counter()
            async with session.post(f"{url}/admin/adapters", json=body) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"load: HTTP {resp.status} {await resp.text()}")
            loads.append(time.perf_counter() - start)
        for i in range(n):
            start = time.perf_counter()
            async with session.post(
                f"{url}/admin/adapters/unload", json={"task": f"churn{i:04d}", "wait_s": 0}
            ) as r:
                if r.status != 200:
                    raise RuntimeError(f"unload: HTTP {r.status} {await r.text()}")
            unloads.append(time.perf_counter() - start)
    return statistics.median(loads) * 1e3, statistics.median(unloads) * 1e3


def measure(
    n_tasks: int,
    n_workers: int,
    requests: int,
    churn_n: int,
    base: str,
    adapter: Path,
    histograms: bool = True,
) -> dict:
    half = n_workers // 2
    ports = free_ports(n_workers + 1)
    prefill = [f"http://127.0.0.1:{p}" for p in ports[:half]]
    decode = [f"http://127.0.0.1:{p}" for p in ports[half:n_workers]]
    config = fleet_config(n_tasks, prefill, decode, base, ports[-1], histograms)
    url = f"http://127.0.0.1:{ports[-1]}"
    stub = [sys.executable, "-m", "sun_sglang.bench.stub_server", "--model-path", base]
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "gw.json").write_text(json.dumps(config))
        stubs = []
        for role, urls in (("prefill", prefill), ("decode", decode)):
            argv = [*stub, "--role", role, "--port", ",".join(u.rsplit(":", 1)[1] for u in urls)]
            log = folder / f"{role}.log"
            stubs.append(ManagedProcess(role, ["taskset", "-c", "1", *argv], env, log, f"{urls[0]}/health"))
        argv = ["taskset", "-c", "0", sys.executable, "-m", "router", "--config", str(folder / "gw.json")]
        router = ManagedProcess("router", argv, env, folder / "router.log", f"{url}/health")
        try:
            for proc in stubs:
                proc.start()
            wait_healthy(stubs, 60, poll_s=0.2)
            start = time.perf_counter()
            router.start()
            wait_healthy([router], 300, poll_s=0.1)
            startup_s = time.perf_counter() - start
            rss_start = rss_mib(router.pid)
            latencies = asyncio.run(traffic(url, list(config["tasks"]), requests))
            rss_traffic = rss_mib(router.pid)
            size, scrape_s = asyncio.run(scrape(url))
            load_ms, unload_ms = asyncio.run(churn(url, adapter, churn_n))
            size_after, _ = asyncio.run(scrape(url, 1))
            rss_churn = rss_mib(router.pid)
        finally:
            stop_all([router, *stubs])
    q = statistics.quantiles(latencies, n=100)
    return {
        "tasks": n_tasks,
        "workers": n_workers,
        "task_histograms": histograms,
        "startup_s": round(startup_s, 2),
        "rss_start_mib": round(rss_start, 1),
        "rss_traffic_mib": round(rss_traffic, 1),
        "rss_churn_mib": round(rss_churn, 1),
        "routing_us": round(routing_us(config, 20000), 1),
        "latency_p50_ms": round(q[49] * 1e3, 2),
        "latency_p99_ms": round(q[98] * 1e3, 2),
        "metrics_kib": round(size / 1024, 1),
        "metrics_kib_after_churn": round(size_after / 1024, 1),
        "scrape_ms": round(scrape_s * 1e3, 1),
        "load_ms": round(load_ms, 1),
        "unload_ms": round(unload_ms, 1),
    }


def report(rows: list[dict], requests: int, churn_n: int) -> str:
    head = (
        "| tasks | workers | histograms | start-up (s) | RSS start / after traffic / after churn (MiB)"
        " | routing (µs) | latency p50 / p99 (ms) | /metrics (KiB) | scrape (ms)"
        " | adapter load / unload (ms) |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['tasks']} | {r['workers']} | {'per task' if r['task_histograms'] else 'one set'}"
            f" | {r['startup_s']}"
            f" | {r['rss_start_mib']} / {r['rss_traffic_mib']} / {r['rss_churn_mib']} | {r['routing_us']}"
            f" | {r['latency_p50_ms']} / {r['latency_p99_ms']}"
            f" | {r['metrics_kib']} (after churn {r['metrics_kib_after_churn']}) | {r['scrape_ms']}"
            f" | {r['load_ms']} / {r['unload_ms']} |"
        )
    conditions = (
        f"One router process (core 0), stub prefill and decode servers (core 1) answering at once;"
        f" {requests} /generate requests (64 prompt ids, 16 new tokens) to random tasks at concurrency 16"
        f" after one to every task, /metrics scraped every second meanwhile; {churn_n} adapters loaded"
        " then unloaded through the admin API;"
        " health checks every 5 s, access log off."
    )
    return "\n".join(lines) + "\n\n" + conditions + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.bench.fleet_scale")
    ap.add_argument("--tasks", default="10,100,1000")
    ap.add_argument("--workers", default="64")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--churn", type=int, default=20)
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    from sun_sglang import adapters

    base = str(prepare("tiny-llama"))
    with tempfile.TemporaryDirectory() as tmp:
        adapter = adapters.save_random(Path(base), Path(tmp) / "adapter", 4, adapters.ALL_LINEAR, 1, 0.05)
        rows = [
            measure(int(t), int(w), args.requests, args.churn, base, adapter)
            for w in args.workers.split(",")
            for t in args.tasks.split(",")
        ]
        largest = max(rows, key=lambda r: (r["tasks"], r["workers"]))
        rows.append(
            measure(largest["tasks"], largest["workers"], args.requests, args.churn, base, adapter, False)
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(report(rows, args.requests, args.churn))


if __name__ == "__main__":
    main()
