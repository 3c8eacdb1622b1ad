"""The servers' key (SGLang --api-key, the cluster file's cluster_key): the gateway sends it on
both PD legs and on its load, admin and abort calls; a gateway without it is refused, and says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.test_gateway import ADMIN, CHAT, extra_prefill, gateway, run

KEY = "cluster-key-1"


def test_the_gateway_sends_the_server_key_on_every_call(tiny_base: Path) -> None:
    async def body() -> None:
        options = {"admin_token": "adm1n", "server_api_key": KEY, "load_interval_s": 0.05}
        async with gateway(tiny_base, **options) as (url, client, prefill, decode):
            prefill.api_key = decode.api_key = KEY
            decode.reported_tokens = 0
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200, await resp.text()
            async with extra_prefill(tiny_base, decode) as (purl, new):
                new.api_key = KEY
                join = {"task": "code", "url": purl, "bootstrap_port": 9999}
                async with client.post(f"{url}/admin/prefill", json=join, headers=ADMIN) as resp:
                    assert resp.status == 200, await resp.text()
                decode.delay_s = 5.0  # a request the client gives up on: the gateway aborts it
                try:
                    async with client.post(f"{url}/v1/chat/completions", json=CHAT, timeout=0.5):
                        pass
                except TimeoutError:
                    pass
                for _ in range(100):
                    if decode.aborted:
                        break
                    await asyncio.sleep(0.05)
                seen = prefill.authorization + decode.authorization + new.authorization
            paths = {path for path, _ in seen}
            assert {"/generate", "/v1/loads", "/server_info", "/abort_request"} <= paths, paths
            assert {header for path, header in seen if path != "/health"} == {f"Bearer {KEY}"}

    run(body())


def test_a_gateway_without_the_key_is_refused_and_says_so(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            prefill.api_key = decode.api_key = KEY
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 502, await resp.text()
                assert (
                    "HTTP 401: the server refused the gateway's key"
                    in (await resp.json())["error"]["message"]
                )

    run(body())
