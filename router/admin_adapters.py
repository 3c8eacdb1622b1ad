"""The admin API for LoRA tasks: load an adapter onto a multi-LoRA prefill pool and serve it as a
task at once; unload it. Same guard as the rest of the admin API (admin.py).

Loading checks the adapter against the pool's base (the decode module: every LoRA weight fits a
linear layer of it) and the servers' limits (max LoRA rank, target modules) before any server sees
it, then loads it on every server of the pool; if one refuses, the others unload it again.
Unloading takes the task out of the routes first (its new requests get 404 model_not_found), lets
its requests in flight finish (bounded), then unloads it from the servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from router.config import TASK_NAME
from router.errors import ApiError
from router.gateway import Gateway
from router.parsers import check_tool_parsers
from router.tokenizer import TaskTokenizer
from sun_sglang import compat


class LoadAdapter(msgspec.Struct, forbid_unknown_fields=True):
    task: str  # the new task's name; also the adapter's name on the prefill servers
    pool: str  # a multi-LoRA prefill pool (prefill_pools)
    path: str  # the adapter folder, as the gateway and the prefill servers see it
    tool_call_parser: str | None = None  # SGLang's parser of its tool calls (qwen25, llama3, ...)


class UnloadAdapter(msgspec.Struct, forbid_unknown_fields=True):
    task: str
    wait_s: float = 30.0  # for the task's requests in flight to finish before the servers unload it


async def _post(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> str | None:
    """None when the server did it, else why not."""
    try:
        async with session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=120)) as resp:
            if resp.status == 200:
                return None
            text = await resp.text()
            try:
                return str(msgspec.json.decode(text).get("error_message") or text)[:500]
            except (msgspec.DecodeError, AttributeError):
                return text[:500]
    except (TimeoutError, aiohttp.ClientError) as err:
        return f"unreachable: {err!r}"


def add_adapter_routes(
    app: web.Application,
    gw: Gateway,
    authorize: Callable[[web.Request], None],
    body: Callable[[web.Request, type], Awaitable[Any]],
    server_info: Callable[[aiohttp.ClientSession, str], Awaitable[dict[str, Any]]],
) -> None:
    lock = asyncio.Lock()  # one adapter change at a time: names and servers stay consistent

    async def load(request: web.Request) -> web.Response:
        authorize(request)
        req: LoadAdapter = await body(request, LoadAdapter)
        if gw.config.decode_adapters:
            raise ApiError(
                409, "the decode servers hold the adapters too (multi-LoRA PD): list them in the cluster file"
            )
        if not TASK_NAME.match(req.task):
            raise ApiError(400, f"task name {req.task!r}: use letters, digits, '_', '.', '-'", param="task")
        pool = gw.shared_prefill.get(req.pool)
        if pool is None:
            raise ApiError(
                404, f"no prefill pool {req.pool!r}; known: {sorted(gw.shared_prefill)}", param="pool"
            )
        if not Path(req.path).is_dir():
            raise ApiError(400, f"no adapter folder {req.path}", param="path")
        session = gw.session
        assert session is not None
        async with lock:
            if req.task in gw.prefill:
                raise ApiError(409, f"task {req.task!r} already exists")
            urls = [slot.url for slot in pool.slots]
            if not urls:
                raise ApiError(409, f"prefill pool {req.pool!r} has no servers")
            info = await server_info(session, urls[0])
            base = info["model_path"]
            try:
                await asyncio.to_thread(
                    compat.check_adapter,
                    req.path,
                    base,
                    info.get("max_lora_rank"),
                    info.get("lora_target_modules"),
                )
            except compat.IncompatibleCheckpoint as err:
                raise ApiError(409, str(err)) from err
            checked_tool_parser(req.task, req.tool_call_parser)
            payload = {"lora_name": req.task, "lora_path": req.path}
            errors = await asyncio.gather(*(_post(session, f"{u}/load_lora_adapter", payload) for u in urls))
            failed = {u: e for u, e in zip(urls, errors) if e is not None}
            if failed:
                loaded = [u for u in urls if u not in failed]
                await asyncio.gather(
                    *(_post(session, f"{u}/unload_lora_adapter", {"lora_name": req.task}) for u in loaded)
                )
                raise ApiError(409, f"the prefill servers refused the adapter: {failed}")
            same_pool = next((t for t, a in gw.adapters.items() if gw.prefill.get(t) is pool), None)
            tokenizer = (
                gw.tokenizers[same_pool] if same_pool else await asyncio.to_thread(TaskTokenizer, base)
            )
            gw.tokenizers[req.task], gw.model_paths[req.task] = tokenizer, base
            gw.decode[req.task], gw.adapters[req.task] = gw.shared_decode, req.task
            if req.tool_call_parser is not None:
                gw.tool_parsers[req.task] = req.tool_call_parser
            gw.prefill[req.task] = pool  # served from now on
        return web.json_response({"task": req.task, "pool": req.pool, "servers": urls})

    async def unload(request: web.Request) -> web.Response:
        authorize(request)
        req: UnloadAdapter = await body(request, UnloadAdapter)
        session = gw.session
        assert session is not None
        async with lock:
            if req.task not in gw.adapters:
                known = (
                    "a full-copy task (remove its workers instead)" if req.task in gw.prefill else "no task"
                )
                raise ApiError(404, f"{req.task!r} is {known}, not an adapter task", param="task")
            pool = gw.prefill.pop(req.task)  # new requests: 404 from here on
            for table in (gw.tokenizers, gw.model_paths, gw.decode, gw.adapters, gw.tool_parsers):
                table.pop(req.task, None)
            deadline = time.monotonic() + req.wait_s
            while gw.running[req.task] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            left = gw.running.pop(req.task, 0)
            gw.metrics.forget_task(req.task)
            urls = [slot.url for slot in pool.slots]
            payload = {"lora_name": req.task}
            errors = await asyncio.gather(
                *(_post(session, f"{u}/unload_lora_adapter", payload) for u in urls)
            )
        failed = {u: e for u, e in zip(urls, errors) if e is not None}
        return web.json_response(
            {"task": req.task, "unloaded_from": urls, "failed": failed, "in_flight_left": left}
        )

    async def listing(request: web.Request) -> web.Response:
        authorize(request)
        out = {
            name: {
                "servers": [slot.url for slot in pool.slots],
                "tasks": sorted(t for t in gw.adapters if gw.prefill.get(t) is pool),
            }
            for name, pool in gw.shared_prefill.items()
        }
        return web.json_response(out)

    app.router.add_get("/admin/adapters", listing)
    app.router.add_post("/admin/adapters", load)
    app.router.add_post("/admin/adapters/unload", unload)


def checked_tool_parser(task: str, parser: str | None) -> str | None:
    """A new task's tool_call_parser, if given: one of SGLang's, else a 400 naming it."""
    if parser is not None:
        try:
            check_tool_parsers({task: parser})
        except ValueError as err:
            raise ApiError(400, str(err), param="tool_call_parser") from err
    return parser
