"""An SGLang stand-in for measuring gateways: answers /generate at once (JSON, or SSE with a
fixed number of chunks), plus /health, /server_info, /model_info, /v1/models and the LoRA
adapter calls (load/unload: accepted, nothing loaded). One process may serve many ports (a fleet
of stand-ins, each its own worker to the gateway).

    python -m sun_sglang.bench.stub_server --port 41001[,41002,...] --role prefill --chunks 16
"""

from __future__ import annotations

import argparse
import asyncio

import msgspec
import uvloop
from aiohttp import web


def build(role: str, chunks: int, model_path: str = "stub") -> web.Application:
    meta = {
        "prompt_tokens": 8,
        "completion_tokens": chunks,
        "cached_tokens": 0,
        "finish_reason": {"type": "length", "length": chunks},
    }
    answer = msgspec.json.encode({"text": "x" * chunks, "output_ids": [120] * chunks, "meta_info": meta})
    sse = (
        b"".join(
            b"data: "
            + msgspec.json.encode({"text": "x" * k, "output_ids": [120] * k, "meta_info": meta})
            + b"\n\n"
            for k in range(1, chunks + 1)
        )
        + b"data: [DONE]\n\n"
    )

    async def generate(request: web.Request) -> web.StreamResponse:
        body = msgspec.json.decode(await request.read())
        if not body.get("stream"):
            return web.Response(body=answer, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(sse)
        return resp

    info = {"disaggregation_mode": role, "model_path": model_path, "data": []}
    info |= {"max_lora_rank": 64, "lora_target_modules": ["all"], "grammar_backend": "xgrammar"}

    async def ok(_: web.Request) -> web.Response:
        return web.json_response(info)

    async def adapter(_: web.Request) -> web.Response:
        return web.json_response({"success": True})

    app = web.Application()
    app.router.add_post("/generate", generate)
    app.router.add_post("/load_lora_adapter", adapter)
    app.router.add_post("/unload_lora_adapter", adapter)
    for path in (
        "/health",
        "/server_info",
        "/model_info",
        "/v1/models",
        "/get_model_info",
        "/get_server_info",
    ):
        app.router.add_get(path, ok)
    return app


async def serve(app: web.Application, ports: list[int]) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", required=True, help="a port, or several separated by commas")
    parser.add_argument("--role", choices=["prefill", "decode"], default="decode")
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--model-path", default="stub", help="what /server_info names as the model")
    args = parser.parse_args()
    uvloop.install()
    ports = [int(p) for p in args.port.split(",")]
    asyncio.run(serve(build(args.role, args.chunks, args.model_path), ports))


if __name__ == "__main__":
    main()
