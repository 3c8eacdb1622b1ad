"""The gateway's HTTP API (aiohttp): OpenAI chat and completions, native /generate, models."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web

from router import openai_format as of
from router import protocol as p
from router.admin import add_admin_routes
from router.config import GatewayConfig
from router.gateway import ApiError, Gateway

log = logging.getLogger("router")


async def _decode_body(request: web.Request, kind: type) -> Any:
    raw = await request.read()
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as err:
        raise ApiError(400, f"invalid request: {err}") from err
    except msgspec.DecodeError as err:
        raise ApiError(400, f"malformed JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise ApiError(400, f"malformed JSON: the body is not valid UTF-8 ({err.reason})") from err


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(obj), status=status, content_type="application/json")


async def _sse_response(request: web.Request, events: AsyncIterator[bytes]) -> web.StreamResponse:
    """Stream server-sent events. The first event is awaited before the headers go out, so a
    failure before the first token is an ordinary HTTP error; a later one ends the stream with an
    error event. Closing `events` (client gone, error) aborts both legs upstream."""
    try:
        first = await events.__anext__()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await resp.write(first)
        try:
            async for event in events:
                await resp.write(event)
        except ApiError as err:
            await resp.write(of.sse(p.ErrorBody(p.ErrorDetail(str(err), err.kind))))
        return resp
    finally:
        await events.aclose()


async def _with_done(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield event
        yield b"data: [DONE]\n\n"
    finally:
        await events.aclose()


def _include_usage(req: p.SamplingFields) -> bool:
    return req.stream_options is not None and req.stream_options.include_usage


GATEWAY = web.AppKey("gateway", Gateway)
_COUNTED = {"/v1/chat/completions", "/v1/completions", "/generate", "/v1/models"}


def build_app(config: GatewayConfig) -> web.Application:
    gw = Gateway(config)
    keys = [k.encode() for k in config.api_keys]

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except ApiError as err:
            body = p.ErrorBody(p.ErrorDetail(str(err), err.kind, err.param, err.code))
            resp = _json(body, err.status)
        except web.HTTPRequestEntityTooLarge:
            resp = _json(p.ErrorBody(p.ErrorDetail("request body too large", "invalid_request_error")), 413)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            resp = _json(p.ErrorBody(p.ErrorDetail("internal error", "internal_error")), 500)
        if request.path in _COUNTED:
            gw.metrics.requests.labels(request.get("task", "-"), request.path, str(resp.status)).inc()
        return resp

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if keys and request.path in _COUNTED:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not any(hmac.compare_digest(given.encode(), key) for key in keys):
                raise ApiError(
                    401, "invalid or missing API key", "invalid_request_error", code="invalid_api_key"
                )
        return await handler(request)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=gw.metrics.render(gw.pools), content_type="text/plain")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(_: web.Request) -> web.Response:
        cards = [p.ModelCard(id=name, created=gw.created) for name in sorted(gw.prefill)]
        return _json(p.ModelList(data=cards))

    async def chat(request: web.Request) -> web.Response:
        req = await _decode_body(request, p.ChatRequest)
        task = request["task"] = gw.task(req.model)
        if not req.messages:
            raise ApiError(400, "messages must not be empty", param="messages")
        ids = gw.tokenizers[task].chat_ids([{"role": m.role, "content": m.content} for m in req.messages])
        params = gw.sampling_params(task, req)
        if req.stream:
            events = of.chat_events(gw.stream(task, ids, params), task, _include_usage(req))
            return await _sse_response(request, events)
        out = await gw.run(task, ids, params)
        meta = out["meta_info"]
        choice = p.ChatChoice(0, p.ChatChoiceMessage("assistant", out["text"]), of.finish_reason(meta))
        return _json(
            p.ChatResponse(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), task, [choice], of.usage(meta))
        )

    async def completions(request: web.Request) -> web.Response:
        req = await _decode_body(request, p.CompletionRequest)
        task = request["task"] = gw.task(req.model)
        ids = req.prompt if isinstance(req.prompt, list) else gw.tokenizers[task].text_ids(req.prompt)
        params = gw.sampling_params(task, req)
        if req.stream:
            events = of.completion_events(gw.stream(task, ids, params), task, _include_usage(req))
            return await _sse_response(request, events)
        out = await gw.run(task, ids, params)
        meta = out["meta_info"]
        choice = p.CompletionChoice(0, out["text"], of.finish_reason(meta))
        return _json(
            p.CompletionResponse(f"cmpl-{uuid.uuid4().hex}", int(time.time()), task, [choice], of.usage(meta))
        )

    async def native_generate(request: web.Request) -> web.Response:
        req = await _decode_body(request, p.GenerateRequest)
        task = request["task"] = gw.task(req.model)
        params = {"stop_token_ids": gw.tokenizers[task].stop_token_ids, **req.sampling_params}
        if req.stream:  # SGLang's own chunks, passed through
            events = (of.sse(c) async for c in gw.stream(task, req.input_ids, params))
            return await _sse_response(request, _with_done(events))
        return _json(await gw.run(task, req.input_ids, params))

    app = web.Application(middlewares=[errors, auth], client_max_size=config.max_body_bytes)
    app[GATEWAY] = gw
    app.on_startup.append(gw.startup)
    app.on_cleanup.append(gw.cleanup)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/generate", native_generate)
    add_admin_routes(app, gw)
    return app
