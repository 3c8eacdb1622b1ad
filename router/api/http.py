"""The API's HTTP plumbing: request bodies decoded (400s naming the field), JSON answers, server-sent
events, session keys; the app keys of the gateway and of each request's trace."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web

from router.api import answers as a
from router.api import openai_format as of
from router.api import protocol as p
from router.errors import ApiError
from router.gateway import Gateway
from router.trace import Trace

_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT = re.compile(r" - at `\$\.?([^`]*)`$")  # msgspec: "Expected `int`, got `str` - at `$.n`"
GATEWAY = web.AppKey("gateway", Gateway)
TRACE = web.RequestKey("trace", Trace)


async def decode_body(request: web.Request, kind: type) -> Any:
    raw = await request.read()
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as err:
        unknown, at = _UNKNOWN.search(str(err)), _AT.search(str(err))
        where = at.group(1) if at else ""
        if unknown:  # never silently dropped: the client asked for something it will not get
            field = f"{where}.{unknown.group(1)}" if where else unknown.group(1)
            raise ApiError(400, f"{field}: not supported by this gateway ({err})", param=field) from err
        raise ApiError(400, f"invalid request: {err}", param=where or None) from err
    except msgspec.DecodeError as err:
        raise ApiError(400, f"malformed JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise ApiError(400, f"malformed JSON: the body is not valid UTF-8 ({err.reason})") from err


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(obj), status=status, content_type="application/json")


async def sse_response(request: web.Request, events: AsyncIterator[bytes]) -> web.StreamResponse:
    """Stream server-sent events. The first event is awaited before the headers go out, so a
    failure before the first token is an ordinary HTTP error; a later one ends the stream with an
    error event. Closing `events` (client gone, error) aborts both legs upstream."""
    try:
        first = await events.__anext__()
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Request-Id": request[TRACE].request_id,
        }
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        request[TRACE].status = resp.status  # what the access log says if the stream is cut
        await resp.write(first)
        try:
            async for event in events:
                await resp.write(event)
        except ApiError as err:
            request[TRACE].error = str(err)
            await resp.write(of.sse(a.ErrorBody(a.ErrorDetail(str(err), err.kind))))
        return resp
    finally:
        await events.aclose()


async def with_done(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield event
        yield b"data: [DONE]\n\n"
    finally:
        await events.aclose()


SESSION_HEADERS = ("X-Session-Id", "X-SMG-Routing-Key")  # ours, and SGLang's gateway's
MAX_SESSION_KEY = 256


def session_key(request: web.Request, user: str | None = None) -> str | None:
    """The client's conversation key for prefill affinity: a session header, else `user`."""
    key = next((request.headers[h] for h in SESSION_HEADERS if request.headers.get(h)), None) or user
    if key is not None and len(key) > MAX_SESSION_KEY:
        raise ApiError(
            400,
            f"a session key (X-Session-Id, X-SMG-Routing-Key or user) is at most {MAX_SESSION_KEY} chars",
        )
    return key


def include_usage(req: p.SamplingFields) -> bool:
    return req.stream_options is not None and req.stream_options.include_usage
