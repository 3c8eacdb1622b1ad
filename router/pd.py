"""SGLang's PD protocol: the same /generate body to one prefill and one decode server at once,
tied together by bootstrap host, port and a random room; the client gets the decode's answer.
If either leg fails, the other is aborted by `rid` at once: a decode server would otherwise hold
the request until its bootstrap timeout (300 s)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from router.config import PrefillWorker


class UpstreamError(Exception):
    """A server of the pair failed; `status` is what the client should see. `unreachable` names
    a server that refused the connection: nothing reached it, so the request may be retried on
    another pair, and the server can leave its pool at once."""

    def __init__(self, message: str, status: int = 502, unreachable: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


def pd_body(prefill: PrefillWorker, input_ids: list[int], params: dict[str, Any]) -> dict[str, Any]:
    return {
        "input_ids": input_ids,
        "sampling_params": params,
        "rid": uuid.uuid4().hex,
        "bootstrap_host": prefill.bootstrap_host,
        "bootstrap_port": prefill.bootstrap_port,
        "bootstrap_room": random.getrandbits(63),
    }


async def _raise_for_status(url: str, resp: aiohttp.ClientResponse) -> None:
    if resp.status == 200:
        return
    text = await resp.text()
    try:
        message = json.loads(text).get("error", {}).get("message") or text
    except (ValueError, AttributeError):
        message = text
    raise UpstreamError(f"{url}: HTTP {resp.status}: {message[:500]}", resp.status)


def _server(url: str) -> str:
    return url.rsplit("/", 1)[0]


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
    try:
        return await session.post(url, json=body)
    except aiohttp.ClientConnectorError as err:
        raise UpstreamError(f"{_server(url)} refused the connection: {err}", 502, _server(url)) from err


async def _post_json(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with await _post(session, url, body) as resp:
        await _raise_for_status(url, resp)
        return await resp.json(content_type=None)


async def abort(session: aiohttp.ClientSession, server_url: str, rid: str) -> None:
    """Ask a server to drop a request; best effort (the server may be gone)."""
    try:
        async with session.post(
            f"{server_url}/abort_request", json={"rid": rid}, timeout=aiohttp.ClientTimeout(total=5)
        ):
            pass
    except (aiohttp.ClientError, asyncio.TimeoutError):
        pass


async def _abort_pending(
    session: aiohttp.ClientSession, legs: list[tuple[asyncio.Task | None, str]], rid: str
) -> None:
    for leg, url in legs:
        if leg is None or not leg.done():
            if leg is not None:
                leg.cancel()
            await abort(session, url, rid)


def _as_upstream(err: BaseException) -> BaseException:
    if isinstance(err, (aiohttp.ClientError, asyncio.TimeoutError)):
        return UpstreamError(f"server unreachable or timed out: {err!r}")
    return err


async def generate(
    session: aiohttp.ClientSession,
    prefill: PrefillWorker,
    decode_url: str,
    input_ids: list[int],
    params: dict[str, Any],
) -> dict[str, Any]:
    """One disaggregated request; the decode server's JSON answer."""
    body = pd_body(prefill, input_ids, params)
    prefill_leg = asyncio.create_task(_post_json(session, f"{prefill.url}/generate", body))
    decode_leg = asyncio.create_task(_post_json(session, f"{decode_url}/generate", body))
    try:
        done, _ = await asyncio.wait({prefill_leg, decode_leg}, return_when=asyncio.FIRST_EXCEPTION)
        for leg in done:
            leg.result()  # raises the first failure
        return await decode_leg
    except BaseException as err:
        await _abort_pending(session, [(prefill_leg, prefill.url), (decode_leg, decode_url)], body["rid"])
        raise _as_upstream(err) from err


async def _unless_failed(awaitable: Any, prefill_leg: asyncio.Task) -> Any:
    """Await the decode side, unless the prefill leg fails first: then raise its error at once
    (the decode server would wait for the KV until its bootstrap timeout)."""
    pending = asyncio.ensure_future(awaitable)
    if not prefill_leg.done():
        await asyncio.wait({pending, prefill_leg}, return_when=asyncio.FIRST_COMPLETED)
    if prefill_leg.done() and not prefill_leg.cancelled() and prefill_leg.exception() is not None:
        pending.cancel()
        prefill_leg.result()
    return await pending


async def generate_stream(
    session: aiohttp.ClientSession,
    prefill: PrefillWorker,
    decode_url: str,
    input_ids: list[int],
    params: dict[str, Any],
) -> AsyncIterator[dict[str, Any]]:
    """One disaggregated request, streamed: yields the decode server's chunks (cumulative text and
    output ids, meta_info). Closing the iterator early (client gone) aborts both legs."""
    body = pd_body(prefill, input_ids, params)
    prefill_leg = asyncio.create_task(_post_json(session, f"{prefill.url}/generate", body))
    finished = False
    resp: aiohttp.ClientResponse | None = None
    try:
        resp = await _unless_failed(
            _post(session, f"{decode_url}/generate", {**body, "stream": True}), prefill_leg
        )
        await _raise_for_status(decode_url, resp)
        lines = resp.content.__aiter__()
        while True:
            try:
                line = await _unless_failed(lines.__anext__(), prefill_leg)
            except StopAsyncIteration:
                break
            if not line.startswith(b"data: "):
                continue
            payload = line[6:].strip()
            if payload == b"[DONE]":
                break
            chunk = json.loads(payload)
            if "error" in chunk:
                raise UpstreamError(f"{decode_url}: {chunk['error'].get('message', chunk['error'])}")
            yield chunk
        await prefill_leg
        finished = True
    except BaseException as err:
        raise _as_upstream(err) from err
    finally:
        if resp is not None:
            resp.release()
        if not finished:
            await _abort_pending(session, [(prefill_leg, prefill.url), (None, decode_url)], body["rid"])
