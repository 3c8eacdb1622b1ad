"""LoRA tasks at the gateway, against stub PD servers: the adapter goes on the prefill leg only,
a failed leg aborts the other, adapters are loaded and unloaded at run time through the admin API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from router.api.app import build_app
from router.config import GatewayConfig, PrefillWorker, TaskRoute
from tests.stub_sglang import StubState, stub_app

ADMIN = {"Authorization": "Bearer admin-secret"}


def chat(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@asynccontextmanager
async def lora_gateway(
    base: Path, adapters: list[str], decode_adapters: bool = False
) -> AsyncIterator[tuple]:
    """One multi-LoRA prefill stub (pool "lora") holding `adapters`, one full-copy task "full" on
    its own prefill stub, one shared decode stub (multi-LoRA PD: `decode_adapters`)."""
    info = {"model_path": str(base), "max_lora_rank": 8, "lora_target_modules": ["all"]}
    pool = StubState("prefill", info=info, loras=set(adapters))
    own = StubState("prefill", info={"model_path": str(base)})
    decode = StubState(
        "decode", info={"model_path": str(base)}, loras=set(adapters) if decode_adapters else None
    )
    own.rooms_done = pool.rooms_done  # the decode stub sees "KV" from either prefill stub
    decode.peer = pool
    async with (
        TestServer(stub_app(pool)) as p_srv,
        TestServer(stub_app(own)) as o_srv,
        TestServer(stub_app(decode)) as d_srv,
    ):
        tasks = {name: TaskRoute(str(base), pool="lora", adapter=name) for name in adapters}
        tasks["full"] = TaskRoute(str(base), [PrefillWorker(url_of(o_srv), 9999)])
        config = GatewayConfig(
            tasks=tasks,
            decode=[url_of(d_srv)],
            prefill_pools={"lora": [PrefillWorker(url_of(p_srv), 9999)]},
            admin_token="admin-secret",
            health_interval_s=0.0,
            decode_adapters=decode_adapters,
        )
        async with TestServer(build_app(config)) as gw, aiohttp.ClientSession() as client:
            yield url_of(gw), client, {"pool": pool, "own": own, "decode": decode}


def run(coro) -> None:
    asyncio.run(coro)


def test_adapter_goes_on_the_prefill_leg_only(tiny_base: Path) -> None:
    async def body() -> None:
        async with lora_gateway(tiny_base, ["math", "code"]) as (url, client, stubs):
            for model in ("math", "code", "full"):
                async with client.post(f"{url}/v1/chat/completions", json=chat(model)) as resp:
                    assert resp.status == 200, await resp.text()
            pool, own, decode = stubs["pool"], stubs["own"], stubs["decode"]
            assert [r.get("lora_path") for r in pool.requests] == ["math", "code"]
            assert [r.get("lora_path") for r in own.requests] == [None]
            assert all("lora_path" not in r for r in decode.requests) and len(decode.requests) == 3
            # apart from the adapter, both legs get the same body (ids, rid, room)
            first = dict(pool.requests[0])
            del first["lora_path"]
            assert first == {k: v for k, v in decode.requests[0].items() if k != "stream"}
            async with client.get(f"{url}/v1/models") as resp:
                assert sorted(m["id"] for m in (await resp.json())["data"]) == ["code", "full", "math"]
            async with client.get(f"{url}/metrics") as resp:  # the shared pool is one pool, listed once
                text = await resp.text()
            assert text.count('pool="prefill-pool:lora"') >= 1 and 'pool="prefill:math"' not in text

    run(body())


def test_multi_lora_pd_names_the_adapter_on_both_legs_and_loads_none_at_run_time(
    tiny_base: Path, tiny_adapters: list[Path]
) -> None:
    """The baseline (launch mode multi_lora): the decode servers run each request's adapter too."""

    async def body() -> None:
        async with lora_gateway(tiny_base, ["math", "code"], decode_adapters=True) as (url, client, stubs):
            for model, stream in (("math", False), ("code", True), ("full", False)):
                async with client.post(
                    f"{url}/v1/chat/completions", json={**chat(model), "stream": stream}
                ) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()
            assert [r.get("lora_path") for r in stubs["pool"].requests] == ["math", "code"]
            assert [r.get("lora_path") for r in stubs["decode"].requests] == ["math", "code", None]
            load = {"task": "poetry", "pool": "lora", "path": str(tiny_adapters[0])}
            async with client.post(f"{url}/admin/adapters", json=load, headers=ADMIN) as resp:
                assert resp.status == 409 and "cluster file" in await resp.text()
            assert stubs["pool"].loras == {"math", "code"}

    run(body())


def test_a_failed_prefill_leg_aborts_the_decode_leg(tiny_base: Path) -> None:
    async def body() -> None:
        async with lora_gateway(tiny_base, ["math"]) as (url, client, stubs):
            stubs["pool"].loras.discard("math")  # the server lost the adapter (restarted without it)
            async with client.post(f"{url}/v1/chat/completions", json=chat("math")) as resp:
                assert resp.status == 400
                assert "LoRA math is not loaded" in (await resp.json())["error"]["message"]
            (req,) = stubs["decode"].requests
            assert stubs["decode"].aborted == [req["rid"]]

    run(body())


def test_a_failed_decode_leg_aborts_the_prefill_leg(tiny_base: Path) -> None:
    async def body() -> None:
        async with lora_gateway(tiny_base, ["math"]) as (url, client, stubs):
            stubs["pool"].delay_s = 30  # the prefill would hold the request this long
            stubs["decode"].fail_with = 400
            async with asyncio.timeout(10):
                async with client.post(f"{url}/v1/chat/completions", json=chat("math")) as resp:
                    assert resp.status == 400
            (req,) = stubs["pool"].requests
            assert stubs["pool"].aborted == [req["rid"]]

    run(body())


def test_load_serve_and_unload_an_adapter_at_run_time(tiny_base: Path, tiny_adapters: list[Path]) -> None:
    async def body() -> None:
        async with lora_gateway(tiny_base, ["math"]) as (url, client, stubs):
            load = {
                "task": "poetry",
                "pool": "lora",
                "path": str(tiny_adapters[0]),
                "tool_call_parser": "qwen25",
            }
            async with client.post(f"{url}/admin/adapters", json=load, headers=ADMIN) as resp:
                assert resp.status == 200, await resp.text()
            assert stubs["pool"].loras == {"math", "poetry"}
            tools = {"tools": [{"type": "function", "function": {"name": "f"}}]}
            for task, status in (("poetry", 200), ("math", 400)):  # only poetry has a tool parser
                async with client.post(f"{url}/v1/chat/completions", json={**chat(task), **tools}) as resp:
                    assert resp.status == status, await resp.text()
            async with client.post(f"{url}/v1/chat/completions", json=chat("poetry")) as resp:
                assert resp.status == 200
            assert stubs["pool"].requests[-1]["lora_path"] == "poetry"
            async with client.get(f"{url}/admin/adapters", headers=ADMIN) as resp:
                assert (await resp.json())["lora"]["tasks"] == ["math", "poetry"]

            async with client.get(f"{url}/metrics") as resp:
                assert 'task="poetry"' in await resp.text()
            unload = {"task": "poetry"}
            async with client.post(f"{url}/admin/adapters/unload", json=unload, headers=ADMIN) as resp:
                assert resp.status == 200 and (await resp.json())["failed"] == {}
            assert stubs["pool"].loras == {"math"}
            async with client.get(f"{url}/metrics") as resp:
                text = await resp.text()  # its series went with it: bounded by the tasks there are
            assert 'task="poetry"' not in text and 'task="math"' in text and "_created" not in text
            async with client.post(f"{url}/v1/chat/completions", json=chat("poetry")) as resp:
                assert resp.status == 404 and (await resp.json())["error"]["code"] == "model_not_found"
            for model in ("math", "full"):  # the other tasks are untouched
                async with client.post(f"{url}/v1/chat/completions", json=chat(model)) as resp:
                    assert resp.status == 200

    run(body())


def test_unload_waits_for_requests_in_flight(tiny_base: Path) -> None:
    async def body() -> None:
        async with lora_gateway(tiny_base, ["math"]) as (url, client, stubs):
            stubs["decode"].delay_s = 1.0
            request = asyncio.create_task(client.post(f"{url}/v1/chat/completions", json=chat("math")))
            await asyncio.sleep(0.3)
            unload = {"task": "math", "wait_s": 10}
            async with client.post(f"{url}/admin/adapters/unload", json=unload, headers=ADMIN) as resp:
                assert (await resp.json())["in_flight_left"] == 0
            resp = await request
            assert resp.status == 200  # finished on its adapter before the unload
            resp.release()
            assert stubs["pool"].loras == set()

    run(body())


@pytest.mark.parametrize(
    "change, status, message",
    [
        ({"path": "/nonexistent"}, 400, "no adapter folder"),
        ({"pool": "other"}, 404, "no prefill pool 'other'"),
        ({"task": "full"}, 409, "already exists"),
        ({"task": "../x"}, 400, "task name"),
        ({"base_adapter": True}, 409, "does not fit base"),
        ({"refuse": True}, 409, "refused the adapter"),
        ({"tool_call_parser": "nonsense"}, 400, "unknown tool_call_parser 'nonsense'"),
    ],
)
def test_bad_adapter_loads_get_clear_errors(
    tiny_base: Path, tiny_adapters: list[Path], smollm2: Path, change: dict, status: int, message: str
) -> None:
    async def body() -> None:
        base = smollm2 if change.pop("base_adapter", False) else tiny_base  # a base it does not fit
        refuse = change.pop("refuse", False)
        async with lora_gateway(base, ["math"]) as (url, client, stubs):
            stubs["pool"].refuse_loads = refuse
            load = {"task": "poetry", "pool": "lora", "path": str(tiny_adapters[0]), **change}
            async with client.post(f"{url}/admin/adapters", json=load, headers=ADMIN) as resp:
                assert resp.status == status
                assert message in (await resp.json())["error"]["message"]
            assert stubs["pool"].loras == {"math"}  # nothing half-loaded
            async with client.post(f"{url}/admin/adapters", json=load, headers={}) as resp:
                assert resp.status == 401

    run(body())
