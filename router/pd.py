"""SGLang's PD protocol: the same /generate body to one prefill and one decode server at once,
tied together by bootstrap host, port and a random room; the client gets the decode's answer.
If either leg fails or times out, the other is aborted by `rid` at once: a decode server would
otherwise hold the request until its bootstrap timeout (300 s)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import aiohttp
import msgspec

from router.config import PrefillWorker
from router.upstream import Refused, Response, UpstreamPool

T = TypeVar("T")


class UpstreamError(Exception):
    """A server of the pair failed; `status` is what the client should see. `unreachable` names
    a server that refused the connection: nothing reached it, so the request may be retried on
    another pair, and the server can leave its pool at once."""

    def __init__(self, message: str, status: int = 502, unreachable: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


@dataclass(frozen=True)
class Clients:
    legs: UpstreamPool  # the /generate legs
    session: aiohttp.ClientSession  # aborts


@dataclass(frozen=True)
class Pair:
    """The two servers of one request, and the gateway's callbacks for it."""

    prefill: PrefillWorker
    decode: str  # the decode server's URL
    progressed: Callable[[], None]  # a token or an answer came: both servers are alive
    prefill_done: Callable[[], None]  # the prefill leg ended (its server's load is released)


@dataclass(frozen=True)
class LegTimeouts:
    first_token_s: float  # streamed: request sent -> first chunk
    between_tokens_s: float  # streamed: the longest wait for the next chunk
    answer_s: float  # not streamed: request sent -> the whole answer


def pd_body(
    prefill: PrefillWorker,
    rid: str,
    input_ids: list[int],
    params: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> bytes:
    """The one body both legs get, encoded once; `extra`: other request fields (logprobs)."""
    return msgspec.json.encode(
        {
            "input_ids": input_ids,
            "sampling_params": params,
            "rid": rid,
            "bootstrap_host": prefill.bootstrap_host,
            "bootstrap_port": prefill.bootstrap_port,
            "bootstrap_room": random.getrandbits(63),
            **(extra or {}),
        }
    )


def _streamed(body: bytes) -> bytes:
    # An encoded JSON object ends with "}": the decode leg's streaming body without a re-encode.
    return body[:-1] + b',"stream":true}'


def with_adapter(body: bytes, adapter: str | None) -> bytes:
    """A leg's body for a LoRA task. SUN names the adapter on the prefill leg only: its decode
    servers run the plain base (naming it there gets a 400 from SGLang); multi-LoRA PD on both."""
    return body if adapter is None else body[:-1] + b',"lora_path":' + msgspec.json.encode(adapter) + b"}"


async def _raise_for_status(server: str, resp: Response) -> None:
    if resp.status == 200:
        return
    text = (await resp.read()).decode(errors="replace")
    if resp.status in (401, 403):  # the gateway's own key is wrong: not the client's fault
        raise UpstreamError(
            f"{server}: HTTP {resp.status}: the server refused the gateway's key "
            "(the servers' --api-key must be the gateway's server_api_key: the cluster's cluster_key)"
        )
    try:
        message = msgspec.json.decode(text).get("error", {}).get("message") or text
    except (msgspec.DecodeError, AttributeError):
        message = text
    raise UpstreamError(f"{server}: HTTP {resp.status}: {str(message)[:500]}", resp.status)


async def _post(legs: UpstreamPool, server: str, body: bytes) -> Response:
    try:
        return await legs.post(server, "/generate", body)
    except Refused as err:
        raise UpstreamError(str(err), 502, server) from err


async def _post_read(legs: UpstreamPool, server: str, body: bytes) -> bytes:
    async with await _post(legs, server, body) as resp:
        await _raise_for_status(server, resp)
        return await resp.read()


def _prefill_leg(
    legs: UpstreamPool, pair: Pair, body: bytes, first_token_s: float
) -> tuple[asyncio.Task, Callable[[], None]]:
    """The prefill leg, bounded by first_token_s until `lift()`: a frozen prefill server fails the
    request in that time, streamed or not. Once the decode side shows the KV arrived (a first
    chunk, or its answer), the prefill server's own reply may lag; only the request's bound holds."""
    deadline: list[asyncio.Timeout] = []

    async def run() -> bytes:
        try:
            async with asyncio.timeout(first_token_s) as limit:
                deadline.append(limit)
                try:
                    return await _post_read(legs, pair.prefill.url, body)
                finally:
                    deadline.clear()  # a finished Timeout cannot be rescheduled
        except TimeoutError as err:
            raise UpstreamError("timed out waiting for the first token (prefill server)", 504) from err

    def lift() -> None:
        if deadline:
            deadline[0].reschedule(None)

    leg = asyncio.create_task(run())
    leg.add_done_callback(lambda _: pair.prefill_done())
    return leg, lift


async def abort(session: aiohttp.ClientSession, server_url: str, rid: str) -> None:
    """Ask a server to drop a request; best effort (the server may be gone)."""
    try:
        async with session.post(
            f"{server_url}/abort_request", json={"rid": rid}, timeout=aiohttp.ClientTimeout(total=5)
        ):
            pass
    except (TimeoutError, aiohttp.ClientError):
        pass


async def _abort_pending(
    session: aiohttp.ClientSession, legs: list[tuple[asyncio.Task | None, str]], rid: str
) -> None:
    for leg, url in legs:
        if leg is None or not leg.done():
            if leg is not None:
                leg.cancel()
            await abort(session, url, rid)


def _reraise_as_upstream(err: BaseException, what: str) -> NoReturn:
    if isinstance(err, TimeoutError):
        raise UpstreamError(f"timed out waiting for {what}", 504) from err
    if isinstance(err, (ConnectionError, OSError)):
        raise UpstreamError(f"server unreachable or connection lost: {err!r}") from err
    if isinstance(err, msgspec.DecodeError):  # a server that answers 200 with something not SGLang's
        raise UpstreamError(f"malformed answer from the server: {err}") from err
    raise err


async def _unless_failed(awaitable: Awaitable[T], prefill_leg: asyncio.Task) -> T:
    """Await the decode side in this task, unless the prefill leg fails first: then raise its
    error at once (the decode server would wait for the KV until its bootstrap timeout)."""
    if prefill_leg.done():
        if prefill_leg.exception() is not None:
            getattr(awaitable, "close", lambda: None)()
            prefill_leg.result()
        return await awaitable
    # Trick: no extra task per await. A failing prefill leg cancels this task; the cancellation
    # is then taken back (uncancel) and turned into the prefill's error.
    me = asyncio.current_task()
    assert me is not None
    failed = False

    def on_prefill_done(leg: asyncio.Task) -> None:
        nonlocal failed
        if not leg.cancelled() and leg.exception() is not None:
            failed = True
            me.cancel()

    prefill_leg.add_done_callback(on_prefill_done)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if not failed:
            raise
        me.uncancel()
        prefill_leg.result()
        raise
    finally:
        prefill_leg.remove_done_callback(on_prefill_done)


async def generate(
    clients: Clients,
    pair: Pair,
    body: bytes,
    rid: str,
    timeouts: LegTimeouts,
    adapter: str | None = None,
    decode_adapter: str | None = None,
) -> dict[str, Any]:
    """One disaggregated request; the decode server's JSON answer."""
    prefill, decode_url = pair.prefill, pair.decode
    prefill_leg, lift = _prefill_leg(clients.legs, pair, with_adapter(body, adapter), timeouts.first_token_s)
    decode_done = False
    try:
        async with asyncio.timeout(timeouts.answer_s):
            decode_body = with_adapter(body, decode_adapter)
            answer = await _unless_failed(_post_read(clients.legs, decode_url, decode_body), prefill_leg)
            decode_done = True
            lift()
            await prefill_leg
        return msgspec.json.decode(answer)
    except BaseException as err:
        legs = [(prefill_leg, prefill.url)] + ([] if decode_done else [(None, decode_url)])
        await _abort_pending(clients.session, legs, rid)
        _reraise_as_upstream(err, "the answer")


async def generate_stream(
    clients: Clients,
    pair: Pair,
    body: bytes,
    rid: str,
    timeouts: LegTimeouts,
    adapter: str | None = None,
    decode_adapter: str | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """One disaggregated request, streamed: yields the decode server's chunks (cumulative text and
    output ids, meta_info). Closing the iterator early (client gone) aborts both legs."""
    prefill, decode_url = pair.prefill, pair.decode
    prefill_leg, lift = _prefill_leg(clients.legs, pair, with_adapter(body, adapter), timeouts.first_token_s)
    finished = False
    resp: Response | None = None
    lines: AsyncIterator[bytes] | None = None
    budget, what = timeouts.first_token_s, "the first token"
    try:
        async with asyncio.timeout(budget):
            decode_body = _streamed(with_adapter(body, decode_adapter))
            resp = await _unless_failed(_post(clients.legs, decode_url, decode_body), prefill_leg)
            await _raise_for_status(decode_url, resp)
        lines = resp.lines()
        while True:
            try:
                # Only the wait upstream is timed, never the write to a slow client.
                async with asyncio.timeout(budget):
                    line = await _unless_failed(lines.__anext__(), prefill_leg)
            except StopAsyncIteration:
                break
            if not line.startswith(b"data: "):
                continue
            payload = line[6:].strip()
            if payload == b"[DONE]":
                break
            chunk = msgspec.json.decode(payload)
            if "error" in chunk:
                raise UpstreamError(f"{decode_url}: {chunk['error'].get('message', chunk['error'])}")
            budget, what = timeouts.between_tokens_s, "the next token"
            lift()
            yield chunk
        try:
            async with asyncio.timeout(budget):
                await prefill_leg
        except TimeoutError:  # the answer is whole, so the KV came; a busy prefill's late reply
            prefill_leg.cancel()  # is not the client's concern
        finished = True
    except BaseException as err:
        _reraise_as_upstream(err, what)
    finally:
        if lines is not None:
            await lines.aclose()  # type: ignore[attr-defined]
        if resp is not None:
            resp.release()
        if not finished:
            await _abort_pending(clients.session, [(prefill_leg, prefill.url), (None, decode_url)], rid)
