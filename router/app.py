"""The gateway's HTTP API (aiohttp): OpenAI chat and completions, native /generate, models."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from router import protocol as p
from router.config import GatewayConfig
from router.pd import UpstreamError, generate
from router.pools import DecodePool, PrefillPool
from router.tokenizer import TaskTokenizer

log = logging.getLogger("router")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.param, self.code = status, kind, param, code


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.created = int(time.time())
        self.tokenizers = {name: TaskTokenizer(t.model_path) for name, t in config.tasks.items()}
        self.prefill = {
            name: PrefillPool(t.prefill, config.prefill_policy) for name, t in config.tasks.items()
        }
        self.decode = DecodePool(config.decode, config.decode_policy)
        self.session: aiohttp.ClientSession | None = None

    async def startup(self, _app: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(
            total=self.config.timeouts.request_s, connect=self.config.timeouts.connect_s
        )
        self.session = aiohttp.ClientSession(timeout=timeout)

    async def cleanup(self, _app: web.Application) -> None:
        if self.session:
            await self.session.close()

    def task(self, model: str) -> str:
        if model not in self.config.tasks:
            raise ApiError(
                404,
                f"The model '{model}' does not exist; known: {', '.join(sorted(self.config.tasks))}",
                param="model",
                code="model_not_found",
            )
        return model

    def sampling_params(self, task: str, req: p.SamplingFields) -> dict[str, Any]:
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        if max_tokens is not None and max_tokens < 1:
            raise ApiError(400, "max_tokens must be at least 1", param="max_tokens")
        if req.stream:
            raise ApiError(400, "streaming is not supported by this gateway yet", param="stream")
        if req.n != 1:
            raise ApiError(400, "only n=1 is supported", param="n")
        params: dict[str, Any] = {
            "max_new_tokens": max_tokens if max_tokens is not None else 128,
            "stop_token_ids": self.tokenizers[task].stop_token_ids,
            "temperature": 1.0 if req.temperature is None else req.temperature,
        }
        if req.top_p is not None:
            params["top_p"] = req.top_p
        if req.stop:
            params["stop"] = [req.stop] if isinstance(req.stop, str) else req.stop
        if req.seed is not None:
            params["sampling_seed"] = req.seed
        return params

    async def run(self, task: str, input_ids: list[int], params: dict[str, Any]) -> dict[str, Any]:
        if not input_ids:
            raise ApiError(400, "the prompt is empty", param="messages")
        assert self.session is not None
        prefill_pool = self.prefill[task]
        pi, di = prefill_pool.choose(input_ids), self.decode.choose()
        weight = len(input_ids) + params.get("max_new_tokens", 128)
        prefill_pool.place(pi, len(input_ids))
        self.decode.place(di, weight)
        try:
            return await generate(
                self.session, prefill_pool.workers[pi], self.decode.workers[di], input_ids, params
            )
        except UpstreamError as err:
            status = 502 if err.status >= 500 else err.status
            raise ApiError(status, str(err), kind="upstream_error") from err
        finally:
            prefill_pool.release(pi, len(input_ids))
            self.decode.release(di, weight)


def _finish_reason(meta: dict[str, Any]) -> str | None:
    kind = (meta.get("finish_reason") or {}).get("type")
    return {"length": "length", "stop": "stop", "abort": "stop"}.get(kind, kind)


def _usage(meta: dict[str, Any]) -> p.Usage:
    prompt, completion = meta.get("prompt_tokens", 0), meta.get("completion_tokens", 0)
    return p.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


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


def build_app(config: GatewayConfig) -> web.Application:
    gw = Gateway(config)

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            body = p.ErrorBody(p.ErrorDetail(str(err), err.kind, err.param, err.code))
            return _json(body, err.status)
        except web.HTTPRequestEntityTooLarge:
            body = p.ErrorBody(p.ErrorDetail("request body too large", "invalid_request_error"))
            return _json(body, 413)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            return _json(p.ErrorBody(p.ErrorDetail("internal error", "internal_error")), 500)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(_: web.Request) -> web.Response:
        cards = [p.ModelCard(id=name, created=gw.created) for name in sorted(config.tasks)]
        return _json(p.ModelList(data=cards))

    async def chat(request: web.Request) -> web.Response:
        req = await _decode_body(request, p.ChatRequest)
        task = gw.task(req.model)
        if not req.messages:
            raise ApiError(400, "messages must not be empty", param="messages")
        ids = gw.tokenizers[task].chat_ids([{"role": m.role, "content": m.content} for m in req.messages])
        out = await gw.run(task, ids, gw.sampling_params(task, req))
        meta = out["meta_info"]
        choice = p.ChatChoice(0, p.ChatChoiceMessage("assistant", out["text"]), _finish_reason(meta))
        return _json(
            p.ChatResponse(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), task, [choice], _usage(meta))
        )

    async def completions(request: web.Request) -> web.Response:
        req = await _decode_body(request, p.CompletionRequest)
        task = gw.task(req.model)
        ids = req.prompt if isinstance(req.prompt, list) else gw.tokenizers[task].text_ids(req.prompt)
        out = await gw.run(task, ids, gw.sampling_params(task, req))
        meta = out["meta_info"]
        choice = p.CompletionChoice(0, out["text"], _finish_reason(meta))
        return _json(
            p.CompletionResponse(f"cmpl-{uuid.uuid4().hex}", int(time.time()), task, [choice], _usage(meta))
        )

    async def native_generate(request: web.Request) -> web.Response:
        req = await _decode_body(request, p.GenerateRequest)
        task = gw.task(req.model)
        params = {"stop_token_ids": gw.tokenizers[task].stop_token_ids, **req.sampling_params}
        return _json(await gw.run(task, req.input_ids, params))

    app = web.Application(middlewares=[errors], client_max_size=config.max_body_bytes)
    app.on_startup.append(gw.startup)
    app.on_cleanup.append(gw.cleanup)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/generate", native_generate)
    return app
