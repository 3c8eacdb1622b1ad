"""The gateway against stub PD servers: the protocol it speaks, and what bad input gets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from router.api.app import build_app
from router.config import GatewayConfig, PrefillWorker, TaskRoute
from tests.stub_sglang import StubState, stub_app

CHAT = {"model": "math", "messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 3, "temperature": 0}


@asynccontextmanager
async def gateway(
    model_path: Path,
    max_body: int = 1 << 20,
    dead_decode: str | None = None,
    extra_decode: str | None = None,
    tool_call_parser: str | None = None,
    reasoning_parser: str | None = None,
    **options: object,
) -> AsyncIterator[tuple]:
    prefill = StubState("prefill", info={"model_path": str(model_path)})
    decode = StubState("decode", info={"model_path": str(model_path)})
    decode.peer = prefill
    async with TestServer(stub_app(prefill)) as p_srv, TestServer(stub_app(decode)) as d_srv:
        config = GatewayConfig(
            tasks={
                "math": TaskRoute(
                    str(model_path),
                    [PrefillWorker(str(p_srv.make_url("")).rstrip("/"), 9999)],
                    tool_call_parser=tool_call_parser,
                    reasoning_parser=reasoning_parser,
                )
            },
            decode=[u for u in (dead_decode, extra_decode) if u] + [str(d_srv.make_url("")).rstrip("/")],
            max_body_bytes=max_body,
            **{"health_interval_s": 0.0, **options},
        )
        async with TestServer(build_app(config)) as gw, aiohttp.ClientSession() as client:
            yield str(gw.make_url("")).rstrip("/"), client, prefill, decode


def run(coro) -> None:
    asyncio.run(coro)


def test_chat_sends_same_ids_and_bootstrap_to_both_legs(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200
                data = await resp.json()
            assert data["object"] == "chat.completion" and data["model"] == "math"
            assert data["choices"][0]["message"] == {"role": "assistant", "content": "AAA"}
            assert data["usage"]["completion_tokens"] == 3
            (p_req,), (d_req,) = prefill.requests, decode.requests
            assert p_req == d_req  # one body for both legs: same ids, room, rid
            assert p_req["bootstrap_port"] == 9999 and p_req["bootstrap_host"] == "127.0.0.1"
            assert 0 <= p_req["bootstrap_room"] < 2**63
            assert p_req["input_ids"][:1] == [1]  # the task's chat template, applied once
            assert p_req["sampling_params"]["stop_token_ids"] == [2]
            assert p_req["sampling_params"]["max_new_tokens"] == 3

    run(body())


def test_models_and_completions(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, _):
            async with client.get(f"{url}/v1/models") as resp:
                assert [m["id"] for m in (await resp.json())["data"]] == ["math"]
            req = {"model": "math", "prompt": [5, 6, 7], "max_tokens": 2}
            async with client.post(f"{url}/v1/completions", json=req) as resp:
                data = await resp.json()
            assert data["choices"][0]["text"] == "AA" and prefill.requests[-1]["input_ids"] == [5, 6, 7]

    run(body())


BAD = [
    (b"{not json", 400, "malformed JSON"),
    (b'{"model": "math", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "malformed JSON"),
    (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "does not exist"),
    (b'{"model": "math:adapter", "messages": [{"role": "user", "content": "x"}]}', 404, "does not exist"),
    (b'{"model": "../math", "messages": [{"role": "user", "content": "x"}]}', 404, "does not exist"),
    (b'{"model": "math\\r\\nX: 1", "messages": [{"role": "user", "content": "x"}]}', 404, "does not exist"),
    (b'{"model": "math\\u0000", "messages": [{"role": "user", "content": "x"}]}', 404, "does not exist"),
    (b'{"model": "math", "messages": []}', 400, "messages must not be empty"),
    (b'{"model": "math", "messages": "hello"}', 400, "invalid request"),
    (
        b'{"model": "math", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}',
        400,
        "invalid request",
    ),
    (
        b'{"model": "math", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
        400,
        "max_tokens",
    ),
    (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing required field `model`"),
]


@pytest.mark.parametrize(("raw", "status", "message"), BAD)
def test_bad_input_gets_openai_error_and_gateway_stays_healthy(
    tiny_base: Path, raw: bytes, status: int, message: str
) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            async with client.post(
                f"{url}/v1/chat/completions", data=raw, headers={"content-type": "application/json"}
            ) as resp:
                assert resp.status == status
                err = (await resp.json())["error"]
            assert message in err["message"] and err["type"]
            assert not prefill.requests and not decode.requests  # nothing reached a server
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200

    run(body())


def test_oversized_body_is_413(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, max_body=1000) as (url, client, _, _d):
            big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
            async with client.post(f"{url}/v1/chat/completions", json=big) as resp:
                assert resp.status == 413
                assert "too large" in (await resp.json())["error"]["message"]

    run(body())


def test_failed_prefill_aborts_decode_and_fails_fast(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            prefill.fail_with = 500
            t0 = time.monotonic()
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 502
                err = (await resp.json())["error"]
            assert time.monotonic() - t0 < 3  # not the decode server's bootstrap timeout
            assert err["type"] == "upstream_error" and "HTTP 500" in err["message"]
            await asyncio.sleep(0.1)
            assert decode.aborted == [decode.requests[0]["rid"]]

    run(body())


def test_openai_client_chat_completions_and_streams(tiny_base: Path) -> None:
    from openai import AsyncOpenAI

    async def body() -> None:
        async with gateway(tiny_base) as (url, _client, _p, _d):
            client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")
            reply = await client.chat.completions.create(
                model="math", messages=[{"role": "user", "content": "hi"}], max_tokens=3
            )
            assert reply.choices[0].message.content == "AAA" and reply.usage.total_tokens > 3
            stream = await client.chat.completions.create(
                model="math",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
            )
            parts, reasons, usage = [], [], None
            async for chunk in stream:
                for choice in chunk.choices:
                    parts.append(choice.delta.content or "")
                    reasons.append(choice.finish_reason)
                usage = chunk.usage or usage
            assert "".join(parts) == "AAAA" and reasons[-1] == "length"
            assert usage is not None and usage.completion_tokens == 4
            text = await client.completions.create(model="math", prompt="x", max_tokens=2, stream=True)
            assert "".join([c.choices[0].text async for c in text if c.choices]) == "AA"
            models = await client.models.list()
            assert [m.id for m in models.data] == ["math"]

    run(body())


def test_stream_with_failed_prefill_is_a_plain_502(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            prefill.fail_with = 503
            req = {**CHAT, "stream": True}
            t0 = time.monotonic()
            async with client.post(f"{url}/v1/chat/completions", json=req) as resp:
                assert resp.status == 502
                assert "HTTP 503" in (await resp.json())["error"]["message"]
            assert time.monotonic() - t0 < 3
            await asyncio.sleep(0.1)
            assert decode.aborted == [decode.requests[0]["rid"]]

    run(body())


def test_metrics_count_requests_tokens_and_worker_state(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, _p, _d):
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "x"}) as resp:
                assert resp.status == 404
            async with client.get(f"{url}/metrics") as resp:
                text = await resp.text()
        assert 'sun_requests_total{endpoint="/v1/chat/completions",status="200",task="math"} 1.0' in text
        assert 'sun_requests_total{endpoint="/v1/chat/completions",status="404",task="-"} 1.0' in text
        assert 'sun_output_tokens_total{task="math"} 3.0' in text
        assert 'sun_pool_workers{pool="decode",state="healthy"} 1.0' in text
        assert 'sun_worker_in_flight{pool="prefill:math"' in text

    run(body())


def test_api_keys_guard_the_api_but_not_health(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, api_keys=["s3cret"]) as (url, client, prefill, _d):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with client.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers) as resp:
                    assert resp.status == 401
                    assert (await resp.json())["error"]["code"] == "invalid_api_key"
            assert not prefill.requests
            async with client.get(f"{url}/health") as resp:
                assert resp.status == 200
            auth = {"Authorization": "Bearer s3cret"}
            async with client.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth) as resp:
                assert resp.status == 200

    run(body())


def test_limits_answer_429_and_400(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, max_concurrency=0) as (url, client, _p, _d):
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 429
        async with gateway(tiny_base, max_prompt_tokens=5) as (url, client, prefill, _d):
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 400
                assert "the limit is 5" in (await resp.json())["error"]["message"]
            assert not prefill.requests

    run(body())


def test_unhealthy_decode_leaves_the_pool_and_returns(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, health_interval_s=0.05, health_timeout_s=1.0) as (
            url,
            client,
            _p,
            decode,
        ):
            decode.healthy = False
            await asyncio.sleep(0.5)
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 503
                assert "no healthy decode server" in (await resp.json())["error"]["message"]
            assert not decode.requests
            decode.healthy = True
            await asyncio.sleep(0.5)
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200

    run(body())


def _dead_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # closed again: connections are refused


@pytest.mark.parametrize("stream", [False, True])
def test_refused_decode_leaves_pool_and_request_is_retried(tiny_base: Path, stream: bool) -> None:
    async def body() -> None:
        dead = _dead_url()
        async with gateway(tiny_base, dead_decode=dead) as (url, client, prefill, decode):
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": stream}) as resp:
                assert resp.status == 200
                text = await resp.text()
            assert ('"content":"A"' in text and "[DONE]" in text) if stream else "AAA" in text
            assert len(decode.requests) == 1  # one retry, on the healthy decode server
            served = decode.requests[0]["rid"]
            assert prefill.requests[-1]["rid"] == served
            # the first attempt's prefill leg (sent or not yet) is aborted by its own rid
            assert len(prefill.aborted) == 1 and prefill.aborted[0] != served
            async with client.get(f"{url}/metrics") as resp:
                assert 'sun_pool_workers{pool="decode",state="healthy"} 1.0' in await resp.text()

    run(body())


ADMIN = {"Authorization": "Bearer adm1n"}


def test_admin_api_needs_its_token_and_refuses_hosts_off_the_allow_list(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, _p, _d):
            async with client.get(f"{url}/admin/workers", headers=ADMIN) as resp:
                assert resp.status == 404  # disabled without admin_token
        async with gateway(tiny_base, admin_token="adm1n", api_keys=["k"]) as (url, client, _p, _d):
            async with client.get(f"{url}/admin/workers", headers={"Authorization": "Bearer k"}) as resp:
                assert resp.status == 401  # an API key is not an admin token
            join = {"task": "math", "url": "http://10.1.2.3:30001", "bootstrap_port": 9999}
            async with client.post(f"{url}/admin/prefill", json=join, headers=ADMIN) as resp:
                assert resp.status == 403
                assert "not in admin_allowed_hosts" in (await resp.json())["error"]["message"]

    run(body())


@asynccontextmanager
async def extra_prefill(model_path: Path, decode: StubState, **info: object) -> AsyncIterator[tuple]:
    state = StubState("prefill", info={"model_path": str(model_path), **info})
    decode.peer = state
    async with TestServer(stub_app(state)) as srv:
        yield str(srv.make_url("")).rstrip("/"), state


def test_admin_joins_a_checked_prefill_server_and_a_new_task(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, admin_token="adm1n") as (url, client, _p, decode):
            async with extra_prefill(tiny_base, decode) as (purl, new):
                join = {"task": "code", "url": purl, "bootstrap_port": 9999}
                async with client.post(f"{url}/admin/prefill", json=join, headers=ADMIN) as resp:
                    assert resp.status == 200, await resp.text()
                async with client.get(f"{url}/v1/models") as resp:
                    assert [m["id"] for m in (await resp.json())["data"]] == ["code", "math"]
                async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "code"}) as resp:
                    assert resp.status == 200
                assert len(new.requests) == 1
                async with client.get(f"{url}/admin/workers", headers=ADMIN) as resp:
                    workers = await resp.json()
                assert [w["url"] for w in workers["prefill:code"]] == [purl]

    run(body())


def test_admin_refuses_prefill_servers_that_do_not_match(tiny_base: Path, smollm2: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, admin_token="adm1n") as (url, client, _p, decode):
            async with extra_prefill(tiny_base, decode, page_size=16) as (purl, new):
                join = {"task": "math", "url": purl, "bootstrap_port": 9999}
                async with client.post(f"{url}/admin/prefill", json=join, headers=ADMIN) as resp:
                    assert resp.status == 409
                    assert "page_size: 16 (prefill) vs 1 (decode)" in (await resp.json())["error"]["message"]
            async with extra_prefill(smollm2, decode) as (purl, new):
                join = {"task": "big", "url": purl, "bootstrap_port": 9999}
                async with client.post(f"{url}/admin/prefill", json=join, headers=ADMIN) as resp:
                    assert resp.status == 409
                    assert (
                        "num_hidden_layers: 30 (prefill) vs 2 (decode)"
                        in (await resp.json())["error"]["message"]
                    )
                assert not new.requests
            async with client.get(f"{url}/v1/models") as resp:
                assert [m["id"] for m in (await resp.json())["data"]] == ["math"]

    run(body())


def test_admin_drain_and_remove(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, admin_token="adm1n") as (url, client, prefill, decode):
            async with extra_prefill(tiny_base, decode) as (purl, new):
                join = {"task": "math", "url": purl, "bootstrap_port": 9999}
                async with client.post(f"{url}/admin/prefill", json=join, headers=ADMIN) as resp:
                    assert resp.status == 200, await resp.text()
                workers = await (await client.get(f"{url}/admin/workers", headers=ADMIN)).json()
                first = workers["prefill:math"][0]["url"]
                async with client.post(f"{url}/admin/drain", json={"url": first}, headers=ADMIN) as resp:
                    assert resp.status == 200
                for _ in range(3):
                    async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                        assert resp.status == 200
                assert len(new.requests) == 3 and not prefill.requests  # the drained one got none
                async with client.post(f"{url}/admin/remove", json={"url": first}, headers=ADMIN) as resp:
                    assert resp.status == 200
                workers = await (await client.get(f"{url}/admin/workers", headers=ADMIN)).json()
                assert [w["url"] for w in workers["prefill:math"]] == [purl]

    run(body())


def test_native_generate_streams_sglang_chunks(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, _p, _d):
            req = {
                "model": "math",
                "input_ids": [1, 2, 3],
                "sampling_params": {"max_new_tokens": 3},
                "stream": True,
            }
            async with client.post(f"{url}/generate", json=req) as resp:
                assert resp.status == 200
                lines = [ln for ln in (await resp.text()).split("\n\n") if ln]
            assert lines[-1] == "data: [DONE]" and len(lines) == 4
            assert '"text":"AAA"' in lines[-2]

    run(body())
