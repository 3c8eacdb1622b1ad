"""The gateway's HTTP API (aiohttp): OpenAI chat and completions, native /generate, models."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from aiohttp import web

from router.admin import add_admin_routes
from router.api import answers as a
from router.api import openai_format as of
from router.api import protocol as p
from router.api.chat import add_chat_routes
from router.api.completions import add_completion_routes
from router.api.http import (
    GATEWAY,
    TRACE,
    decode_body,
    json_response,
    session_key,
    sse_response,
    with_done,
)
from router.api.responses import add_response_routes
from router.api.sampling import MAX_TOP_LOGPROBS
from router.api.tokens import add_token_routes
from router.config import GatewayConfig
from router.errors import ApiError
from router.gateway import Gateway
from router.parsers import check_reasoning_parsers, check_tool_parsers
from router.trace import Job, Trace, request_id

log = logging.getLogger("router")


_COUNTED = {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/generate", "/v1/models"}


def build_app(config: GatewayConfig) -> web.Application:
    gw = Gateway(config)
    # unknown names fail here; and SGLang's parsers are imported now, not on a request
    check_tool_parsers(gw.tool_parsers)
    check_reasoning_parsers(gw.reasoning_parsers)
    keys = [k.encode() for k in config.api_keys]

    def check_key(request: web.Request) -> None:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not any(hmac.compare_digest(given.encode(), key) for key in keys):
            raise ApiError(401, "invalid or missing API key", "invalid_request_error", code="invalid_api_key")

    @web.middleware
    async def api(request: web.Request, handler: Any) -> web.StreamResponse:
        """API keys, OpenAI-style errors, the request's trace, metrics and access log: one layer."""
        counted = request.path in _COUNTED
        if counted:
            trace = request[TRACE] = Trace(request_id(request.headers.get("X-Request-Id")), request.path)
        try:
            if keys and (counted or request.path.startswith("/v1/")):  # /v1/models/{id} too
                check_key(request)
            resp = await handler(request)
        except ApiError as err:
            body = a.ErrorBody(a.ErrorDetail(str(err), err.kind, err.param, err.code))
            resp = json_response(body, err.status)
            if counted:
                trace.error = str(err)
        except web.HTTPRequestEntityTooLarge:
            resp = json_response(
                a.ErrorBody(a.ErrorDetail("request body too large", "invalid_request_error")), 413
            )
        except web.HTTPException:
            raise
        except asyncio.CancelledError:  # the client went away, or the gateway stopped waiting
            if counted and gw.access_log:
                trace.error = trace.error or "cancelled: client disconnected or gateway stopping"
                gw.access_log.write(trace, trace.status or 499)
            raise
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            resp = json_response(a.ErrorBody(a.ErrorDetail("internal error", "internal_error")), 500)
        if counted:
            gw.metrics.count_request(trace.task or "-", request.path, resp.status)
            if not resp.prepared:
                resp.headers["X-Request-Id"] = trace.request_id
            if gw.access_log:
                gw.access_log.write(trace, resp.status)
        return resp

    async def metrics(_: web.Request) -> web.Response:
        # in a thread: at a thousand tasks rendering takes a fraction of a second, which the
        # event loop would otherwise spend not serving requests
        body = await asyncio.to_thread(gw.metrics.render, gw.pools, gw.supervision.by_url().values())
        return web.Response(body=body, content_type="text/plain")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(_: web.Request) -> web.Response:
        cards = [a.ModelCard(id=name, created=gw.created) for name in sorted(gw.prefill)]
        return json_response(a.ModelList(data=cards))

    async def model(request: web.Request) -> web.Response:
        return json_response(a.ModelCard(id=gw.task(request.match_info["model"]), created=gw.created))

    async def native_generate(request: web.Request) -> web.Response:
        req = await decode_body(request, p.GenerateRequest)
        trace = request[TRACE]
        task = trace.task = gw.task(req.model)
        params = {"stop_token_ids": gw.tokenizers[task].stop_token_ids, **req.sampling_params}
        extra = {}
        if req.return_logprob:
            if not 0 <= req.top_logprobs_num <= MAX_TOP_LOGPROBS:
                raise ApiError(
                    400, f"top_logprobs_num must be 0..{MAX_TOP_LOGPROBS}", param="top_logprobs_num"
                )
            extra = {
                "return_logprob": True,
                "top_logprobs_num": req.top_logprobs_num,
                "return_text_in_logprobs": req.return_text_in_logprobs,
            }
        job = Job(task, req.input_ids, trace, extra, session_key(request))
        if req.stream:  # SGLang's own chunks, passed through
            events = (of.sse(c) async for c in gw.stream(job, params))
            return await sse_response(request, with_done(events))
        return json_response(await gw.run(job, params))

    app = web.Application(middlewares=[api], client_max_size=config.max_body_bytes)
    app[GATEWAY] = gw
    app.on_startup.append(gw.startup)
    app.on_cleanup.append(gw.cleanup)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model}", model)
    add_chat_routes(app, config.max_n)
    add_completion_routes(app, config.max_n)
    add_response_routes(app, config.max_n)
    app.router.add_post("/generate", native_generate)
    add_token_routes(app, gw)
    add_admin_routes(app, gw)
    return app
