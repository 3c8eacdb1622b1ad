"""Servers that hang, answer garbage or crawl, and clients that crawl: the gateway answers with a
clear error in bounded time, aborts the other leg, and keeps serving (stub servers)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from router.config import Timeouts
from tests.test_gateway import CHAT, gateway, run

QUICK = Timeouts(connect_s=1, first_token_s=0.5, between_tokens_s=0.5, request_s=60)


def test_hung_prefill_fails_a_json_request_at_the_first_token_limit(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, timeouts=QUICK) as (url, client, prefill, decode):
            prefill.delay_s = 30.0  # frozen; the JSON answer's own bound is 0.5 + 50 * 0.5 = 25.5 s
            t0 = time.monotonic()
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": 50}) as resp:
                assert resp.status == 504
                message = (await resp.json())["error"]["message"]
            assert "first token (prefill server)" in message and time.monotonic() - t0 < 3.0
            assert decode.aborted == [decode.requests[0]["rid"]]

    run(body())


@pytest.mark.parametrize("stream", [False, True])
def test_garbage_from_the_decode_server_is_a_clear_502_and_the_next_request_works(
    tiny_base: Path, stream: bool
) -> None:
    async def body() -> None:
        async with gateway(tiny_base, timeouts=QUICK) as (url, client, prefill, decode):
            decode.garbage = True
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": stream}) as resp:
                text = await resp.text()
            if stream and resp.status == 200:  # headers already sent: an error event, no [DONE]
                assert '"error"' in text and "[DONE]" not in text, text
            else:
                assert resp.status == 502 and "upstream_error" in text, text
            decode.garbage = False
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": stream}) as resp:
                assert resp.status == 200 and "AAA" in (await resp.text()).replace('"A"', "AAA")
            async with client.get(f"{url}/health") as resp:
                assert resp.status == 200

    run(body())


def test_a_slow_server_within_the_limits_is_waited_for(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, timeouts=QUICK) as (url, client, prefill, decode):
            prefill.delay_s = decode.delay_s = 0.3
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200 and decode.aborted == []

    run(body())


def test_slow_loris_clients_do_not_starve_the_others(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, timeouts=QUICK) as (url, client, prefill, decode):
            host, port = url.removeprefix("http://").split(":")
            crawlers = []
            for i in range(100):  # headers begun, never finished; half of them with a body promised
                reader, writer = await asyncio.open_connection(host, int(port))
                head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                writer.write(head + (b"Content-Length: 100000\r\n\r\n{" if i % 2 else b"X-Slow: 1"))
                await writer.drain()
                crawlers.append(writer)
            t0 = time.monotonic()
            for _ in range(5):
                async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                    assert resp.status == 200
            assert time.monotonic() - t0 < 5.0
            for writer in crawlers:
                writer.close()

    run(body())


@pytest.mark.parametrize("stream", [False, True])
def test_a_prefill_reply_that_lags_behind_the_tokens_does_not_fail_the_request(
    tiny_base: Path, stream: bool
) -> None:
    async def body() -> None:
        timeouts = Timeouts(connect_s=1, first_token_s=0.5, between_tokens_s=2.0, request_s=60)
        async with gateway(tiny_base, timeouts=timeouts) as (url, client, prefill, decode):
            prefill.reply_lag_s = 1.0  # KV sent at once; the HTTP reply comes past first_token_s
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": stream}) as resp:
                text = await resp.text()
                assert resp.status == 200 and '"error"' not in text, text
            prefill.reply_lag_s = 30.0  # so late that the stream ends without it
            if stream:
                async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
                    text = await resp.text()
                    assert resp.status == 200 and "[DONE]" in text and '"error"' not in text, text

    run(body())
