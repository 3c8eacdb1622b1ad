"""SGLang's PD protocol: the same /generate body to one prefill and one decode server at once,
tied together by bootstrap host, port and a random room; the client gets the decode's answer."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import aiohttp

from router.config import PrefillWorker


class UpstreamError(Exception):
    """A server of the pair failed; `status` is what the client should see."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


async def _post_json(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            message = data.get("error", {}).get("message") if isinstance(data, dict) else None
            raise UpstreamError(f"{url}: HTTP {resp.status}: {message or data}", resp.status)
        return data


async def abort(session: aiohttp.ClientSession, server_url: str, rid: str) -> None:
    """Ask a server to drop a request; best effort (the server may be gone)."""
    try:
        async with session.post(
            f"{server_url}/abort_request", json={"rid": rid}, timeout=aiohttp.ClientTimeout(total=5)
        ):
            pass
    except (aiohttp.ClientError, asyncio.TimeoutError):
        pass


async def generate(
    session: aiohttp.ClientSession,
    prefill: PrefillWorker,
    decode_url: str,
    input_ids: list[int],
    sampling_params: dict[str, Any],
) -> dict[str, Any]:
    """One disaggregated request. If the prefill leg fails, the decode leg is aborted at once
    (it would otherwise wait for KV until SGLang's bootstrap timeout)."""
    rid = uuid.uuid4().hex
    body = {
        "input_ids": input_ids,
        "sampling_params": sampling_params,
        "rid": rid,
        "bootstrap_host": prefill.bootstrap_host,
        "bootstrap_port": prefill.bootstrap_port,
        "bootstrap_room": random.getrandbits(63),
    }
    prefill_leg = asyncio.create_task(_post_json(session, f"{prefill.url}/generate", body))
    decode_leg = asyncio.create_task(_post_json(session, f"{decode_url}/generate", body))
    try:
        done, _ = await asyncio.wait({prefill_leg, decode_leg}, return_when=asyncio.FIRST_EXCEPTION)
        for leg in done:
            leg.result()  # raises the first failure
        return await decode_leg
    except BaseException as err:
        for leg, url in ((prefill_leg, prefill.url), (decode_leg, decode_url)):
            if not leg.done():
                leg.cancel()
                await abort(session, url, rid)
        if isinstance(err, (aiohttp.ClientError, asyncio.TimeoutError)):
            raise UpstreamError(f"server unreachable or timed out: {err!r}") from err
        raise
