"""The gateway's own cost, beside SGLang's Rust gateway (sglang-router), on stub backends that
answer at once: requests per second and the latency each gateway adds (p50, p99), streamed and
not. Both gateways run in PD mode over the same prefill and decode stubs, in the same run.

    python -m sun_sglang.bench.gateway_overhead [--seconds 8] [--concurrency 32]

Placement: each gateway pinned to core 0; stubs and this load generator to core 1 (2-core
machine). Baseline latency = the decode stub alone; "added" = gateway p50/p99 minus that.
"aiohttp-floor" (JSON only) is the bound for any aiohttp gateway: a bare proxy making the same two
upstream calls with no parsing, routing or accounting (sun_sglang/bench/aiohttp_floor.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop

from sun_sglang.launch.process import ManagedProcess, stop_all, wait_healthy
from sun_sglang.models import prepare

BODY = {"model": "bench", "input_ids": list(range(1, 9)), "sampling_params": {"max_new_tokens": 16}}


def _pinned(core: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *argv]


def _procs(tmp: Path, ports: dict[str, int], chunks: int) -> list[ManagedProcess]:
    py = sys.executable
    stub = [py, "-m", "sun_sglang.bench.stub_server", "--chunks", str(chunks)]
    gw_config = {
        "tasks": {
            "bench": {
                "model_path": str(prepare("tiny-llama")),
                "prefill": [{"url": f"http://127.0.0.1:{ports['prefill']}", "bootstrap_port": 9}],
            }
        },
        "decode": [f"http://127.0.0.1:{ports['decode']}"],
        "port": ports["sun"],
        "health_interval_s": 0,
    }
    (tmp / "gw.json").write_text(json.dumps(gw_config))
    env = dict(os.environ)
    specs = {
        "prefill": _pinned(1, [*stub, "--port", str(ports["prefill"]), "--role", "prefill"]),
        "decode": _pinned(1, [*stub, "--port", str(ports["decode"]), "--role", "decode"]),
        "sun": _pinned(0, [py, "-m", "router", "--config", str(tmp / "gw.json")]),
        "aiohttp-floor": _pinned(
            0,
            [
                *(py, "-m", "sun_sglang.bench.aiohttp_floor", "--port", str(ports["aiohttp-floor"])),
                *("--prefill", f"http://127.0.0.1:{ports['prefill']}"),
                *("--decode", f"http://127.0.0.1:{ports['decode']}"),
            ],
        ),
        "sglang-router": _pinned(
            0,
            [
                py,
                "-m",
                "sglang_router.launch_router",
                "--pd-disaggregation",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["sglang-router"]),
                "--prefill",
                f"http://127.0.0.1:{ports['prefill']}",
                "9",
                "--decode",
                f"http://127.0.0.1:{ports['decode']}",
                "--policy",
                "round_robin",
                "--log-level",
                "warn",
            ],
        ),
    }
    return [
        ManagedProcess(n, a, env, tmp / f"{n}.log", f"http://127.0.0.1:{ports[n]}/health")
        for n, a in specs.items()
    ]


async def _load(url: str, stream: bool, seconds: float, concurrency: int) -> list[float]:
    body = json.dumps({**BODY, "stream": stream}).encode()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers={"content-type": "application/json"}) as s:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with s.post(f"{url}/generate", data=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: HTTP {resp.status}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=16, help="SSE chunks per streamed answer")
    parser.add_argument("--first-port", type=int, default=41000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    uvloop.install()
    names = ["prefill", "decode", "sun", "sglang-router", "aiohttp-floor"]
    ports = {n: args.first_port + i for i, n in enumerate(names)}
    with tempfile.TemporaryDirectory() as tmp:
        procs = _procs(Path(tmp), ports, args.chunks)
        try:
            for proc in procs:
                proc.start()
            wait_healthy(procs, timeout_s=120)
            print(
                f"{platform.machine()}, {os.cpu_count()} cores; gateways on core 0, stubs and load on core 1;"
                f" {args.concurrency} concurrent clients, {args.seconds:.0f} s per run, /generate with"
                f" 8 token ids, streamed answers in {args.chunks} chunks"
            )
            header = ("target", "mode", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms")
            print("{:14s} {:7s} {:>8s} {:>8s} {:>8s} {:>8s} {:>8s}".format(*header))
            for stream in (False, True):
                mode = "stream" if stream else "json"
                rows = {}
                targets = ("decode", "sun", "sglang-router") + ("aiohttp-floor",) * (not stream)
                for name in targets:
                    asyncio.run(
                        _load(f"http://127.0.0.1:{ports[name]}", stream, 1.0, args.concurrency)
                    )  # warm
                    lat = asyncio.run(
                        _load(f"http://127.0.0.1:{ports[name]}", stream, args.seconds, args.concurrency)
                    )
                    rows[name] = (len(lat) / args.seconds, _pct(lat, 50) * 1e3, _pct(lat, 99) * 1e3)
                base = rows["decode"]
                for name, (rps, p50, p99) in rows.items():
                    added = "" if name == "decode" else f"{p50 - base[1]:8.2f} {p99 - base[2]:8.2f}"
                    label = "stub alone" if name == "decode" else name
                    print(f"{label:14s} {mode:7s} {rps:8.0f} {p50:8.2f} {p99:8.2f} {added}")
                ratio = rows["sun"][0] / rows["sglang-router"][0]
                print(f"{'':14s} {mode:7s} sun / sglang-router throughput: {ratio:.2f}x")
                if not stream:
                    floor = rows["aiohttp-floor"][0] / rows["sglang-router"][0]
                    print(f"{'':14s} {mode:7s} aiohttp-floor / sglang-router throughput: {floor:.2f}x")
        finally:
            stop_all(procs)


if __name__ == "__main__":
    main()
