"""Periodic health checks: a worker that fails leaves its pool, and returns once healthy."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import aiohttp

from router.pools import Pool

log = logging.getLogger("router.health")


async def probe(session: aiohttp.ClientSession, url: str, timeout_s: float) -> bool:
    try:
        async with session.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            return resp.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


async def check_once(
    session: aiohttp.ClientSession,
    pools: Iterable[tuple[str, Pool]],
    timeout_s: float,
    failures: dict[str, int],
    fail_after: int = 2,
    recent_s: float = 0.0,
) -> None:
    """Probe every worker once. A worker leaves its pool after `fail_after` failed probes in a
    row (one slow answer under load is not an outage) and returns on its first good one. A probe
    that fails counts for nothing if one of the worker's requests made progress (a token, or a
    whole answer) within `recent_s`: SGLang's /health waits for its scheduler, which a long batch
    keeps busy for seconds."""
    targets = [(name, pool, slot) for name, pool in pools for slot in list(pool.slots)]
    started = time.monotonic()
    results = await asyncio.gather(*(probe(session, slot.url, timeout_s) for _, _, slot in targets))
    for (name, pool, slot), answered in zip(targets, results):
        ok = answered or (slot.healthy and slot.last_ok > started - recent_s)
        url = slot.url
        failures[url] = 0 if ok else failures.get(url, 0) + 1
        if pool.set_health(slot, ok or failures[url] < fail_after):
            log.warning(
                "%s worker %s is %s", name, url, "healthy again" if ok else "unhealthy: out of the pool"
            )


async def server_tokens(session: aiohttp.ClientSession, url: str, timeout_s: float) -> float | None:
    """Tokens an SGLang server holds or has queued (all DP ranks), from /v1/loads; None if unknown."""
    try:
        async with session.get(
            f"{url}/v1/loads?include=core", timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            if resp.status in (401, 403):  # /health is open, so only here does a wrong key show
                log.error("%s refused the gateway's key (server_api_key: the servers' --api-key)", url)
            if resp.status != 200:
                return None
            loads = (await resp.json(content_type=None))["loads"]
            return float(sum(rank["num_total_tokens"] for rank in loads))
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, TypeError):
        return None


async def poll_loads(
    session: aiohttp.ClientSession, pools: Callable[[], Iterable[Pool]], interval_s: float, timeout_s: float
) -> None:
    """Reconcile the decode pools' load with what their servers report, forever."""
    while True:
        targets = [(pool, slot) for pool in pools() for slot in list(pool.slots)]
        reported = await asyncio.gather(*(server_tokens(session, slot.url, timeout_s) for _, slot in targets))
        for (pool, slot), tokens in zip(targets, reported):
            if tokens is not None:
                pool.report(slot, tokens)
        await asyncio.sleep(interval_s)


async def monitor(
    session: aiohttp.ClientSession,
    pools: Callable[[], Iterable[tuple[str, Pool]]],
    interval_s: float,
    timeout_s: float,
) -> None:
    """Probe forever; `pools` is called each round, so workers added at run time are probed."""
    failures: dict[str, int] = {}
    while True:
        await check_once(session, pools(), timeout_s, failures, recent_s=interval_s + timeout_s)
        await asyncio.sleep(interval_s)
