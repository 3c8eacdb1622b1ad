"""The admin API: workers join, drain and leave at run time (LoRA tasks: admin_adapters.py).

Guarded by its own token (`admin_token`, separate from the API keys) and an allow-list of worker
hosts, so worker registration cannot point the gateway at arbitrary addresses. A prefill server
joins only after two checks, both before any request reaches it:
- its checkpoint against the decode module (sun_sglang.compat: layers, KV heads, dtype, ...), and
- its resolved SGLang settings (from /server_info) against a decode server's: mode, dtype, KV
  dtype, page size, transfer backend, bootstrap port. A page-size or KV-dtype mismatch would take
  the shared decode server down.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp import web

from router.admin_adapters import add_adapter_routes, checked_tool_parser
from router.config import TASK_NAME, PrefillWorker
from router.errors import ApiError
from router.gateway import Gateway
from router.pools import PrefillPool
from router.tokenizer import TaskTokenizer
from sun_sglang import compat

_SHARED_SETTINGS = (
    "dtype",
    "kv_cache_dtype",
    "page_size",
    "disaggregation_transfer_backend",
    "grammar_backend",
)


class JoinPrefill(msgspec.Struct, forbid_unknown_fields=True):
    task: str
    url: str
    bootstrap_port: int
    tool_call_parser: str | None = None  # a new task's (SGLang's parser names); an old one keeps its own


class JoinDecode(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    task: str | None = None  # a task's own decode pool (conventional mode); else the shared pool


class WorkerRef(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    force: bool = False


async def _server_info(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with session.get(f"{url}/server_info", timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status != 200:
                raise ApiError(400, f"{url}/server_info answered HTTP {resp.status}", param="url")
            return await resp.json()
    except (TimeoutError, aiohttp.ClientError) as err:
        raise ApiError(400, f"{url} is not reachable: {err!r}", param="url") from err


def add_admin_routes(app: web.Application, gw: Gateway) -> None:
    config = gw.config
    token = (config.admin_token or "").encode()

    def authorize(request: web.Request) -> None:
        if not token:
            raise ApiError(404, "the admin API is disabled (no admin_token configured)")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip().encode()
        if not hmac.compare_digest(given, token):
            raise ApiError(401, "invalid or missing admin token", code="invalid_admin_token")

    async def body(request: web.Request, kind: type) -> Any:
        try:
            return msgspec.json.decode(await request.read(), type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as err:
            raise ApiError(400, f"invalid request: {err}") from err

    def allowed(url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ApiError(400, f"worker url {url!r} must be http://HOST:PORT", param="url")
        if parts.hostname not in config.admin_allowed_hosts:
            raise ApiError(403, f"worker host {parts.hostname!r} is not in admin_allowed_hosts", param="url")
        return f"http://{parts.hostname}:{parts.port}"

    async def reference_settings() -> dict[str, Any]:
        pools = [p for p in gw.decode.values() if p.slots]
        if not pools:
            raise ApiError(409, "no decode server to check the new prefill server against")
        assert gw.session is not None
        return await _server_info(gw.session, pools[0].slots[0].url)

    async def join_prefill(request: web.Request) -> web.Response:
        authorize(request)
        req = await body(request, JoinPrefill)
        url = allowed(req.url)
        assert gw.session is not None
        info, ref = await asyncio.gather(_server_info(gw.session, url), reference_settings())
        if info.get("disaggregation_mode") != "prefill":
            raise ApiError(400, f"{url} is not a prefill server ({info.get('disaggregation_mode')})")
        wrong = [
            f"{k}: {info.get(k)!r} (prefill) vs {ref.get(k)!r} (decode)"
            for k in _SHARED_SETTINGS
            if info.get(k) != ref.get(k)
        ]
        if info.get("disaggregation_bootstrap_port") != req.bootstrap_port:
            wrong.append(
                f"bootstrap_port: {info.get('disaggregation_bootstrap_port')} (server) "
                f"vs {req.bootstrap_port} (request)"
            )
        if wrong:
            raise ApiError(409, f"prefill server {url} does not match the decode pool: {'; '.join(wrong)}")
        model = info["model_path"]
        try:
            compat.check_prefill_module(model, ref["model_path"], info["dtype"], ref["dtype"])
        except compat.IncompatibleCheckpoint as err:
            raise ApiError(409, str(err)) from err
        cache_tokens = info.get("max_total_num_tokens")
        worker = PrefillWorker(url=url, bootstrap_port=req.bootstrap_port, cache_tokens=cache_tokens)
        if req.task in gw.adapters:  # a new server of a multi-LoRA pool would lack its adapters
            raise ApiError(409, f"task {req.task!r} is a LoRA adapter on a prefill pool, not its own servers")
        if req.task in gw.prefill:
            if req.tool_call_parser not in (None, gw.tool_parsers.get(req.task)):
                raise ApiError(
                    409, f"task {req.task!r} parses tool calls with {gw.tool_parsers.get(req.task)}"
                )
            if gw.model_paths[req.task] != model:
                raise ApiError(409, f"task {req.task!r} is served by {gw.model_paths[req.task]}, not {model}")
            try:
                gw.prefill[req.task].add(worker)
            except ValueError as err:
                raise ApiError(409, str(err)) from err
        else:
            if not TASK_NAME.match(req.task):
                raise ApiError(
                    400, f"task name {req.task!r}: use letters, digits, '_', '.', '-'", param="task"
                )
            if checked_tool_parser(req.task, req.tool_call_parser):
                gw.tool_parsers[req.task] = req.tool_call_parser
            gw.tokenizers[req.task] = await asyncio.to_thread(TaskTokenizer, model)
            gw.model_paths[req.task] = model
            gw.decode[req.task] = gw.shared_decode
            gw.prefill[req.task] = PrefillPool([worker], config.prefill_policy)  # served from now on
        return web.json_response({"task": req.task, "url": url, "model_path": model})

    async def join_decode(request: web.Request) -> web.Response:
        authorize(request)
        req = await body(request, JoinDecode)
        url = allowed(req.url)
        assert gw.session is not None
        info = await _server_info(gw.session, url)
        if info.get("disaggregation_mode") != "decode":
            raise ApiError(400, f"{url} is not a decode server ({info.get('disaggregation_mode')})")
        if req.task is not None and req.task not in gw.decode:
            raise ApiError(404, f"unknown task {req.task!r}", param="task")
        pool = gw.decode[req.task] if req.task else gw.shared_decode
        if pool.slots:
            ref = await _server_info(gw.session, pool.slots[0].url)
            wrong = [k for k in ("model_path", *_SHARED_SETTINGS) if info.get(k) != ref.get(k)]
            if wrong:
                raise ApiError(409, f"decode server {url} differs from its pool in: {', '.join(wrong)}")
        try:
            pool.add(url)
        except ValueError as err:
            raise ApiError(409, str(err)) from err
        return web.json_response({"url": url, "pool": req.task or "shared"})

    def slots(url: str) -> list[tuple[Any, Any]]:
        found = [(pool, pool.find(url)) for _, pool in gw.pools if pool.find(url) is not None]
        if not found:
            raise ApiError(404, f"no worker {url}", param="url")
        return found

    async def drain(request: web.Request) -> web.Response:
        authorize(request)
        req = await body(request, WorkerRef)
        for _, slot in slots(req.url):
            slot.draining = True
        return web.json_response({"url": req.url, "draining": True})

    async def remove(request: web.Request) -> web.Response:
        authorize(request)
        req = await body(request, WorkerRef)
        found = slots(req.url)
        busy = sum(slot.requests for _, slot in found)
        if busy and not req.force:
            raise ApiError(409, f"{req.url} has {busy} requests in flight; drain it first or force")
        for pool, slot in found:
            pool.remove(slot)
        return web.json_response({"url": req.url, "removed": True})

    async def workers(request: web.Request) -> web.Response:
        authorize(request)
        supervised = gw.supervision.by_url()
        out: dict[str, Any] = {
            name: [
                {
                    "url": s.url,
                    "healthy": s.healthy,
                    "draining": s.draining,
                    "requests": s.requests,
                    "load_tokens": s.load,
                    **(
                        {"supervision": msgspec.to_builtins(supervised[s.url])} if s.url in supervised else {}
                    ),
                }
                for s in pool.slots
            ]
            for name, pool in gw.pools
        }
        if supervised:  # every process the launcher keeps alive, the gateway and those out of pools too
            out["supervised"] = [msgspec.to_builtins(p) for p in supervised.values()]
        return web.json_response(out)

    add_adapter_routes(app, gw, authorize, body, _server_info)
    app.router.add_get("/admin/workers", workers)
    app.router.add_post("/admin/prefill", join_prefill)
    app.router.add_post("/admin/decode", join_decode)
    app.router.add_post("/admin/drain", drain)
    app.router.add_post("/admin/remove", remove)
