"""Soak: N streaming clients for a bounded time against a running cluster through its gateway,
some of them hanging up mid-stream, while the gateway's and servers' resources are sampled.

Every request must end one of three ways: complete (finish reason and [DONE]), a clear error (an
HTTP error body or an error event), or cut by its own client on purpose; one that neither ends nor
errs within `request_timeout_s` counts as hung. After the clients stop, the cluster gets
`settle_s` to return to rest: no request running or queued on any server, no KV held on a decode
server, nothing in flight in the gateway, its open connections and file descriptors back to
where they started."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import psutil

from sun_sglang.launch.cluster import Cluster


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)  # complete, error, cut, hung
    errors: Counter = field(default_factory=Counter)  # message -> count


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss_mib(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def sample(cluster: Cluster) -> dict:
    """One look at the cluster: gateway memory, descriptors and TCP connections; server memory;
    what the SGLang servers hold (requests running or queued, decode KV tokens in use)."""
    (gw,) = [p for p in cluster.procs if p.name == "gateway"]
    gateway = psutil.Process(gw.pid)
    held = {"running": 0, "queued": 0, "decode_kv_tokens": 0}
    for spec in cluster.plan.servers:
        for load in _get_json(f"{spec.url}/v1/loads")["loads"]:
            held["running"] += load["num_running_reqs"]
            held["queued"] += load["num_waiting_reqs"]
            if spec.role == "decode":
                held["decode_kv_tokens"] += load["num_used_tokens"]
    return {
        "t": time.time(),
        "gateway_rss_mib": round(gateway.memory_info().rss / 2**20, 1),
        "gateway_fds": gateway.num_fds(),
        "gateway_tcp": len(gateway.net_connections("tcp")),
        "servers_rss_mib": round(sum(tree_rss_mib(p.pid) for p in cluster.procs if p.name != "gateway"), 1),
        **held,
    }


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    tasks: list[str],
    rng: random.Random,
    stop_at: float,
    cut_share: float,
    timeout_s: float,
    tally: Tally,
) -> None:
    while time.monotonic() < stop_at:
        body = {
            "model": rng.choice(tasks),
            "messages": [{"role": "user", "content": f"Count to {rng.randint(3, 30)}."}],
            "max_tokens": rng.randint(4, 24),
            "stream": True,
        }
        cut_after = rng.randint(1, 3) if rng.random() < cut_share else None
        outcome = "hung"
        try:
            async with (
                asyncio.timeout(timeout_s),
                session.post(f"{url}/v1/chat/completions", json=body) as resp,
            ):
                if resp.status != 200:
                    tally.errors[f"HTTP {resp.status}: {(await resp.json())['error']['message'][:80]}"] += 1
                    outcome = "error"
                else:
                    chunks = 0
                    async for line in resp.content:
                        if line.startswith(b"data: [DONE]"):
                            outcome = "complete" if outcome == "finished" else "error"
                            break
                        if not line.startswith(b"data: "):
                            continue
                        data = json.loads(line[6:])
                        if "error" in data:
                            tally.errors[f"stream: {data['error']['message'][:80]}"] += 1
                            outcome = "error"
                            break
                        if any(c.get("finish_reason") for c in data.get("choices", [])):
                            outcome = "finished"
                        chunks += 1
                        if cut_after and chunks >= cut_after and outcome != "finished":
                            resp.close()  # the client hangs up mid-stream
                            outcome = "cut"
                            break
                    if outcome == "finished":  # no [DONE] after the last chunk
                        outcome = "error"
        except TimeoutError:
            outcome = "hung"
        except aiohttp.ClientError as err:
            tally.errors[f"{type(err).__name__}"] += 1
            outcome = "error"
        tally.outcomes[outcome] += 1


async def _post(session: aiohttp.ClientSession, url: str, body: dict) -> int:
    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
        await resp.read()
        return resp.status


async def soak(
    cluster: Cluster,
    clients: int,
    seconds: float,
    cut_share: float = 0.2,
    seed: int = 0,
    sample_s: float = 2.0,
    settle_s: float = 60.0,
    request_timeout_s: float = 120.0,
) -> dict:
    url, tasks = cluster.gateway_url, list(cluster.plan.gateway.tasks)
    connector = aiohttp.TCPConnector(limit=2 * clients * len(tasks))
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up at full concurrency on every task: the gateway's kept-alive upstream connections
        # (bounded per server) reach their working size before the baseline is taken.
        warm = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        for t in tasks:  # one at a time first: a cold server's first request is slow
            await _post(session, url, {**warm, "model": t})
        jobs = [_post(session, url, {**warm, "model": t}) for t in tasks for _ in range(clients)]
        statuses = await asyncio.gather(*jobs)
        if set(statuses) != {200}:
            raise RuntimeError(f"warm-up requests failed: {sorted(statuses)}")
        baseline = await asyncio.to_thread(sample, cluster)
        samples, tally = [baseline], Tally()
        stop_at = time.monotonic() + seconds
        runs = [
            asyncio.create_task(
                _client(
                    session,
                    url,
                    tasks,
                    random.Random(seed * 1000 + i),
                    stop_at,
                    cut_share,
                    request_timeout_s,
                    tally,
                )
            )
            for i in range(clients)
        ]
        while not all(r.done() for r in runs):
            await asyncio.sleep(sample_s)
            samples.append(await asyncio.to_thread(sample, cluster))
        await asyncio.gather(*runs)
    ended = time.time()
    settle_deadline = time.monotonic() + settle_s
    while True:  # rest: nothing held anywhere, the gateway's sockets back to where they were
        last = await asyncio.to_thread(sample, cluster)
        samples.append(last)
        at_rest = not (last["running"] or last["queued"] or last["decode_kv_tokens"])
        at_rest &= (
            last["gateway_fds"] <= baseline["gateway_fds"] and last["gateway_tcp"] <= baseline["gateway_tcp"]
        )
        if at_rest or time.monotonic() > settle_deadline:
            break
        await asyncio.sleep(1.0)
    return {
        "clients": clients,
        "seconds": seconds,
        "cut_share": cut_share,
        "outcomes": dict(tally.outcomes),
        "errors": dict(tally.errors),
        "at_rest": at_rest,
        "settle_s": round(last["t"] - ended, 1),
        "baseline": baseline,
        "peak": {k: max(s[k] for s in samples) for k in baseline if k != "t"},
        "final": last,
        "samples": samples,
    }


def plot(report: dict, path: str) -> None:
    """Resource curves of a soak: gateway memory, descriptors and connections; server memory;
    what the servers hold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t"] - samples[0]["t"] for s in samples]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes[0].plot(t, [s["gateway_rss_mib"] for s in samples], label="gateway RSS (MiB)")
    axes[0].plot(t, [s["servers_rss_mib"] / 10 for s in samples], label="servers RSS / 10 (MiB)")
    axes[1].plot(t, [s["gateway_fds"] for s in samples], label="gateway fds")
    axes[1].plot(t, [s["gateway_tcp"] for s in samples], label="gateway TCP connections")
    axes[2].plot(t, [s["running"] for s in samples], label="requests running (servers)")
    axes[2].plot(t, [s["queued"] for s in samples], label="queued")
    axes[2].plot(t, [s["decode_kv_tokens"] / 100 for s in samples], label="decode KV tokens / 100")
    for ax in axes:
        ax.axvline(report["seconds"], color="grey", ls=":", lw=0.8)
        ax.set_xlabel("s since the baseline (dotted: clients stop)")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{report['clients']} streaming clients, {report['seconds'] / 60:.0f} min, "
        f"{report['cut_share']:.0%} hung up on"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
