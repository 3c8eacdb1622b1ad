"""An SGLang stand-in for measuring gateways: answers /generate at once (JSON, or SSE with a
fixed number of chunks), plus /health, /server_info, /model_info and /v1/models.

    python -m sun_sglang.bench.stub_server --port 41001 --role prefill --chunks 16
"""

from __future__ import annotations

import argparse

import msgspec
import uvloop
from aiohttp import web


def build(role: str, chunks: int) -> web.Application:
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

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"disaggregation_mode": role, "model_path": "stub", "data": []})

    app = web.Application()
    app.router.add_post("/generate", generate)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--role", choices=["prefill", "decode"], default="decode")
    parser.add_argument("--chunks", type=int, default=16)
    args = parser.parse_args()
    uvloop.install()
    web.run_app(build(args.role, args.chunks), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
