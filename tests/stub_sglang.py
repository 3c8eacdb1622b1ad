"""A stand-in for an SGLang server in a PD role: records what the gateway sends, answers
instantly or fails on demand. The decode stub waits for its KV like the real one: until the
matching prefill request arrived, or an abort names its rid."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class StubState:
    role: str
    fail_with: int | None = None  # HTTP status to answer /generate with
    healthy: bool = True
    info: dict[str, Any] = field(default_factory=dict)  # extra /server_info fields
    requests: list[dict[str, Any]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    rooms_done: set[int] = field(default_factory=set)
    peer: StubState | None = None
    delay_s: float = 0.0  # decode: wait this long before the first token; prefill: before answering
    stall_after: int | None = None  # decode, streamed: stop sending after this many chunks
    reported_tokens: int | None = None  # /v1/loads num_total_tokens (None: no such endpoint)
    reply_lag_s: float = 0.0  # prefill: answer this long after the "KV" is sent
    garbage: bool = False  # answer 200 with a body that is not SGLang's (not JSON, broken SSE)
    loras: set[str] | None = None  # LoRA adapters loaded (None: a server without --enable-lora)
    refuse_loads: bool = False  # /load_lora_adapter answers 400
    api_key: str | None = None  # like SGLang's --api-key: 401 without it, except /health
    authorization: list[tuple[str, str | None]] = field(default_factory=list)  # (path, header) seen
    script: list[str] | None = None  # decode: the answer's token texts (finish "stop"), not "A" * n


def stub_app(state: StubState) -> web.Application:
    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        state.requests.append(body)
        if state.fail_with is not None:
            return web.json_response({"error": {"message": "stub failure"}}, status=state.fail_with)
        ids = body["input_ids"]
        lora = body.get("lora_path")
        if lora is not None and (state.loras is None or lora not in state.loras):
            # SGLang: a server without LoRA (every decode server here) or without this adapter
            return web.json_response({"error": {"message": f"LoRA {lora} is not loaded"}}, status=400)
        if state.garbage:
            if body.get("stream"):
                return web.Response(
                    body=b'data: {"text": "A", \x00\xff garbage\n\n', content_type="text/event-stream"
                )
            return web.Response(body=b"\x00\xff<html>not json", content_type="application/json")
        if state.role == "prefill":
            await asyncio.sleep(state.delay_s)
            state.rooms_done.add(body["bootstrap_room"])
            await asyncio.sleep(state.reply_lag_s)
            return web.json_response({"text": "A", "output_ids": [65], "meta_info": _meta(len(ids), 1)})
        for _ in range(500):  # decode: wait for "KV" (the prefill's room) or an abort
            if body["rid"] in state.aborted:
                return web.json_response({"error": {"message": "aborted"}}, status=499)
            if state.peer and body["bootstrap_room"] in state.peer.rooms_done:
                n = body["sampling_params"].get("max_new_tokens", 4)
                await asyncio.sleep(state.delay_s)
                top = body.get("top_logprobs_num", 0) if body.get("return_logprob") else None
                if state.script is not None:
                    return await _scripted(request, len(ids), state.script, bool(body.get("stream")))
                if body.get("stream"):
                    return await _stream(request, len(ids), n, state.stall_after, top)
                return web.json_response(
                    {"text": "A" * n, "output_ids": [65] * n, "meta_info": _meta(len(ids), n, top)}
                )
            await asyncio.sleep(0.01)
        return web.json_response({"error": {"message": "bootstrap timeout"}}, status=500)

    async def abort(request: web.Request) -> web.Response:
        state.aborted.append((await request.json())["rid"])
        return web.json_response({})

    async def load_lora(request: web.Request) -> web.Response:
        name = (await request.json())["lora_name"]
        if state.refuse_loads or state.loras is None or name in state.loras:
            return web.json_response({"success": False, "error_message": f"cannot load {name}"}, status=400)
        state.loras.add(name)
        return web.json_response({"success": True})

    async def unload_lora(request: web.Request) -> web.Response:
        name = (await request.json())["lora_name"]
        if state.loras is None or name not in state.loras:
            return web.json_response({"success": False, "error_message": f"{name} not loaded"}, status=400)
        state.loras.discard(name)
        return web.json_response({"success": True})

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok", status=200 if state.healthy else 503)

    async def server_info(_: web.Request) -> web.Response:
        base = {
            "disaggregation_mode": state.role,
            "dtype": "float32",
            "kv_cache_dtype": "auto",
            "page_size": 1,
            "disaggregation_transfer_backend": "mooncake",
            "disaggregation_bootstrap_port": 9999,
        }
        return web.json_response({**base, **state.info})

    async def loads(_: web.Request) -> web.Response:
        if state.reported_tokens is None:
            raise web.HTTPNotFound()
        return web.json_response({"loads": [{"dp_rank": 0, "num_total_tokens": state.reported_tokens}]})

    @web.middleware
    async def auth(request: web.Request, handler):  # noqa: ANN001, ANN202
        header = request.headers.get("Authorization")
        state.authorization.append((request.path, header))
        if state.api_key and not request.path.startswith("/health") and header != f"Bearer {state.api_key}":
            return web.json_response({"error": "Invalid API Key"}, status=401)
        return await handler(request)

    app = web.Application(middlewares=[auth])
    app.router.add_get("/v1/loads", loads)
    app.router.add_get("/server_info", server_info)
    app.router.add_post("/generate", generate)
    app.router.add_post("/abort_request", abort)
    app.router.add_post("/load_lora_adapter", load_lora)
    app.router.add_post("/unload_lora_adapter", unload_lora)
    app.router.add_get("/health", health)
    return app


async def _stream(
    request: web.Request, prompt_tokens: int, n: int, stall_after: int | None, top: int | None
) -> web.StreamResponse:
    """SGLang's streaming shape: every chunk carries the whole text so far."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for k in range(1, n + 1):
        if stall_after is not None and k > stall_after:
            await asyncio.sleep(3600)
        chunk = {"text": "A" * k, "output_ids": [65] * k, "meta_info": _meta(prompt_tokens, k, top)}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def _scripted(
    request: web.Request, prompt_tokens: int, pieces: list[str], stream: bool
) -> web.StreamResponse:
    def answer(k: int) -> dict[str, Any]:
        meta = _meta(prompt_tokens, k)
        if k == len(pieces):
            meta["finish_reason"] = {"type": "stop", "matched": 2}
        return {"text": "".join(pieces[:k]), "output_ids": [65] * k, "meta_info": meta}

    if not stream:
        return web.json_response(answer(len(pieces)))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for k in range(1, len(pieces) + 1):
        await resp.write(b"data: " + json.dumps(answer(k)).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp


def _meta(prompt_tokens: int, completion_tokens: int, top: int | None = None) -> dict[str, Any]:
    """SGLang's meta_info; with logprobs (top = top_logprobs_num): token k has logprob -0.1 * (k+1)
    and its top list is "A" then "B", "C", ... each 1.0 lower."""
    meta: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "finish_reason": {"type": "length", "length": completion_tokens},
    }
    if top is not None:
        lps = [-0.1 * (k + 1) for k in range(completion_tokens)]
        meta["output_token_logprobs"] = [[lp, 65, "A"] for lp in lps]
        meta["output_top_logprobs"] = [[[lp - j, 65 + j, chr(65 + j)] for j in range(top)] for lp in lps]
    return meta
