"""The floor under any aiohttp gateway: a bare proxy that reads the request, posts one fixed body to
the prefill and the decode stub at once and returns the decode answer. No parsing, routing,
accounting or limits: what aiohttp itself costs for SGLang's PD protocol (one request in, two out).

    python -m sun_sglang.bench.aiohttp_floor --port P --prefill URL --decode URL
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import uvloop
from aiohttp import web

BODY = (
    b'{"input_ids":[1,2,3,4,5,6,7,8],"sampling_params":{"max_new_tokens":16},"rid":"r",'
    b'"bootstrap_host":"127.0.0.1","bootstrap_port":9,"bootstrap_room":5}'
)
HEADERS = {"Content-Type": "application/json"}


def build(prefill: str, decode: str) -> web.Application:
    session: dict[str, aiohttp.ClientSession] = {}

    async def start(_: web.Application) -> None:
        session["s"] = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    async def post(url: str) -> bytes:
        async with session["s"].post(url, data=BODY, headers=HEADERS) as resp:
            return await resp.read()

    async def generate(request: web.Request) -> web.Response:
        await request.read()
        prefill_leg = asyncio.create_task(post(f"{prefill}/generate"))
        answer = await post(f"{decode}/generate")
        await prefill_leg
        return web.Response(body=answer, content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.on_startup.append(start)
    app.router.add_post("/generate", generate)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--prefill", required=True)
    ap.add_argument("--decode", required=True)
    args = ap.parse_args()
    uvloop.install()
    app = build(args.prefill, args.decode)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
