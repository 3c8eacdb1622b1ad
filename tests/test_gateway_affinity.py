"""Prefill affinity through the gateway, on stub servers: a client's session key keeps its
conversation on one prefill replica, and a prefill server's load is released when its leg ends."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from router.api.app import build_app
from router.api.http import GATEWAY
from router.config import GatewayConfig, PrefillWorker, TaskRoute
from tests.stub_sglang import StubState, stub_app
from tests.test_gateway import run


def _chat(text: str, **extra: object) -> dict:
    return {"model": "math", "messages": [{"role": "user", "content": text}], "max_tokens": 2, **extra}


async def _two_replicas(model: Path, decode_delay_s: float = 0.0):  # noqa: ANN202
    prefills = [StubState("prefill"), StubState("prefill")]
    prefills[1].rooms_done = prefills[0].rooms_done  # the decode stub waits on either's "KV"
    decode = StubState("decode", peer=prefills[0], delay_s=decode_delay_s)
    servers = [TestServer(stub_app(s)) for s in [*prefills, decode]]
    for server in servers:
        await server.start_server()
    urls = [str(s.make_url("")).rstrip("/") for s in servers]
    config = GatewayConfig(
        tasks={"math": TaskRoute(str(model), [PrefillWorker(u, 9999) for u in urls[:2]])},
        decode=[urls[2]],
        health_interval_s=0.0,
        load_interval_s=0.0,
    )
    app = build_app(config)
    gateway = TestServer(app)
    await gateway.start_server()
    return gateway, servers, app, prefills, urls


def test_a_session_key_keeps_its_prefill_replica(tiny_base: Path) -> None:
    async def body() -> None:
        gateway, servers, _, prefills, _ = await _two_replicas(tiny_base)
        url = str(gateway.make_url("")).rstrip("/")
        homes: dict[str, set[int]] = {}
        try:
            async with aiohttp.ClientSession() as client:
                for key in ("alice", "bob", "carol", "dave", "erin", "frank"):
                    for k in range(4):  # unrelated prompts: only the key ties them together
                        headers = {"X-Session-Id": key} if k % 2 else {}
                        req = _chat(f"question {k} about {key}", **({} if k % 2 else {"user": key}))
                        before = [len(p.requests) for p in prefills]
                        async with client.post(f"{url}/v1/chat/completions", json=req, headers=headers) as r:
                            assert r.status == 200
                        went = [i for i, p in enumerate(prefills) if len(p.requests) > before[i]]
                        homes.setdefault(key, set()).update(went)
                long_key = {"X-SMG-Routing-Key": "k" * 257}
                async with client.post(f"{url}/v1/chat/completions", json=_chat("hi"), headers=long_key) as r:
                    assert r.status == 400 and "256" in (await r.json())["error"]["message"]
        finally:
            for server in [gateway, *servers]:
                await server.close()
        assert all(len(home) == 1 for home in homes.values()), homes  # header and user agree
        assert Counter(next(iter(h)) for h in homes.values()).keys() == {0, 1}  # keys spread


def test_prefill_load_is_released_when_its_leg_ends(tiny_base: Path) -> None:
    async def body() -> None:
        gateway, servers, app, prefills, _ = await _two_replicas(tiny_base, decode_delay_s=1.0)
        url = str(gateway.make_url("")).rstrip("/")
        gw = app[GATEWAY]
        try:
            async with aiohttp.ClientSession() as client:
                answer = asyncio.create_task(client.post(f"{url}/v1/chat/completions", json=_chat("hi")))
                while not any(p.rooms_done for p in prefills):
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)  # the prefill answered; the decode is still "decoding"
                prefill_slots = gw.prefill["math"].slots
                assert [(s.load, s.requests) for s in prefill_slots] == [(0, 0), (0, 0)]
                assert gw.shared_decode.slots[0].requests == 1 and gw.shared_decode.slots[0].load > 0
                assert (await answer).status == 200
                assert gw.shared_decode.slots[0].requests == 0
        finally:
            for server in [gateway, *servers]:
                await server.close()

    run(body())
