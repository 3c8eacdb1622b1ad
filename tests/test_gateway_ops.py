"""The gateway's operational behaviour against stub PD servers: time limits, request ids and the
access log, load reconciled with /v1/loads, and a graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from router.config import Timeouts
from router.health import check_once
from router.pools import DecodePool, reconcile
from tests.stub_sglang import StubState, stub_app
from tests.test_gateway import CHAT, gateway, run

QUICK = Timeouts(connect_s=1, first_token_s=0.5, between_tokens_s=0.5, request_s=30)


def test_json_answer_past_its_bound_is_504_and_both_legs_are_aborted(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, timeouts=QUICK) as (url, client, prefill, decode):
            decode.delay_s = 5.0  # bound: 0.5 + 3 tokens * 0.5 = 2 s
            t0 = time.monotonic()
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 504, await resp.text()
                err = (await resp.json())["error"]
            assert 1.5 < time.monotonic() - t0 < 4.5
            assert "timed out" in err["message"] and err["type"] == "upstream_error"
            assert decode.aborted == [decode.requests[0]["rid"]]

    run(body())


def test_stream_without_first_token_is_504_before_any_byte(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, timeouts=QUICK) as (url, client, prefill, decode):
            decode.delay_s = 5.0
            t0 = time.monotonic()
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
                assert resp.status == 504
                assert "first token" in (await resp.json())["error"]["message"]
            assert time.monotonic() - t0 < 3.0
            assert decode.aborted == [decode.requests[0]["rid"]]

    run(body())


def test_stream_that_stalls_between_tokens_ends_with_an_error_event(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base, timeouts=QUICK) as (url, client, prefill, decode):
            decode.stall_after = 1
            req = {**CHAT, "stream": True, "max_tokens": 5}
            async with client.post(f"{url}/v1/chat/completions", json=req) as resp:
                assert resp.status == 200
                text = await resp.text()
            assert '"content":"A"' in text and "next token" in text and "[DONE]" not in text
            assert decode.aborted == [decode.requests[0]["rid"]]

    run(body())


def test_request_id_is_echoed_logged_and_starts_the_sglang_rid(tiny_base: Path, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    seen: dict[str, str] = {}

    async def body() -> None:
        options = {"access_log": str(log), "access_log_flush_s": 0.05}
        async with gateway(tiny_base, **options) as (url, client, _, decode):
            headers = {"X-Request-Id": "client-42"}
            async with client.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers) as resp:
                assert resp.status == 200 and resp.headers["X-Request-Id"] == "client-42"
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "nope"}) as resp:
                assert resp.status == 404
                seen["generated"] = resp.headers["X-Request-Id"]
            assert decode.requests[0]["rid"].startswith("client-42.")
            await asyncio.sleep(0.2)

    run(body())
    ok, missing = (json.loads(line) for line in log.read_text().splitlines())
    assert ok["request_id"] == "client-42" and ok["status"] == 200 and ok["task"] == "math"
    assert ok["decode"] and ok["prefill"] and ok["completion_tokens"] == 3 and ok["latency_ms"] > 0
    assert missing["request_id"] == seen["generated"] and missing["status"] == 404
    assert "nope" in missing["error"]


def test_reconcile_adds_only_what_the_gateway_did_not_place() -> None:
    assert reconcile(placed=100, server_tokens=40) == 0.0  # its own requests, not grown yet
    assert reconcile(placed=100, server_tokens=350) == 250.0  # work from elsewhere
    pool = DecodePool(["a", "b"])
    pool.place(pool.slots[0], 100)
    pool.report(pool.slots[1], 500)  # b is busy with another gateway's requests
    assert pool.choose().worker == "a"


def test_decode_load_is_reconciled_with_v1_loads(tiny_base: Path) -> None:
    async def body() -> None:
        busy = StubState("decode", reported_tokens=4000)
        async with TestServer(stub_app(busy)) as busy_srv:
            busy_url = str(busy_srv.make_url("")).rstrip("/")
            options = {"load_interval_s": 0.05, "extra_decode": busy_url}
            async with gateway(tiny_base, **options) as (url, client, _, decode):
                decode.reported_tokens = 10
                await asyncio.sleep(0.3)
                for _ in range(4):
                    async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                        assert resp.status == 200
                assert busy.requests == [] and len(decode.requests) == 4
                async with client.get(f"{url}/metrics") as resp:
                    assert f'sun_worker_external_tokens{{pool="decode",worker="{busy_url}"}} 4000.0' in (
                        await resp.text()
                    )

    run(body())


@pytest.mark.parametrize("per_task", [True, False])
def test_latency_histograms_per_task_or_one_set(tiny_base: Path, per_task: bool) -> None:
    """metrics_task_histograms false: the per-task counters stay, one histogram set for all."""

    async def body() -> None:
        async with gateway(tiny_base, metrics_task_histograms=per_task) as (url, client, _, _decode):
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200
            async with client.get(f"{url}/metrics") as resp:
                text = await resp.text()
            label = 'task="math"' if per_task else 'task="*"'
            assert f"sun_request_latency_seconds_count{{{label}}} 1.0" in text
            assert 'sun_output_tokens_total{task="math"}' in text  # counters: per task either way
            assert ('sun_request_latency_seconds_count{task="math"}' in text) == per_task

    run(body())


def test_sigterm_drains_requests_in_flight_then_exits(tiny_base: Path, tmp_path: Path) -> None:
    async def body() -> None:
        prefill = StubState("prefill")
        decode = StubState("decode", peer=prefill, delay_s=2.0)
        async with TestServer(stub_app(prefill)) as p_srv, TestServer(stub_app(decode)) as d_srv:
            gw, url = _gateway_process(tmp_path, tiny_base, p_srv, d_srv, shutdown_timeout_s=20)
            try:
                async with aiohttp.ClientSession() as client:
                    await _wait_up(client, url, gw)
                    in_flight = asyncio.create_task(client.post(f"{url}/v1/chat/completions", json=CHAT))
                    while not decode.requests:
                        await asyncio.sleep(0.05)
                    os.kill(gw.pid, signal.SIGTERM)
                    resp = await in_flight
                    assert resp.status == 200 and "AAA" in await resp.text()
                    exit_code = await asyncio.to_thread(gw.wait, 15)
                    assert exit_code == 0, gw.stderr.read().decode()[-2000:] if gw.stderr else ""
                    assert decode.aborted == []
            finally:
                if gw.poll() is None:
                    gw.kill()

    run(body())


def test_every_answered_request_is_logged_through_a_repeated_sigterm(tiny_base: Path, tmp_path: Path) -> None:
    """Answered requests sit in the access log's buffer (flushed every 60 s here); a SIGTERM, and
    a second one while a request is still draining (a supervisor repeating itself), must not
    lose them: every answered request has its line once the gateway has exited."""

    async def body() -> None:
        prefill = StubState("prefill")
        decode = StubState("decode", peer=prefill)
        log = tmp_path / "access.log"
        async with TestServer(stub_app(prefill)) as p_srv, TestServer(stub_app(decode)) as d_srv:
            options = {"access_log": str(log), "access_log_flush_s": 60}
            gw, url = _gateway_process(tmp_path, tiny_base, p_srv, d_srv, **options)
            prompt = {"model": "math", "prompt": "2+2", "max_tokens": 4}
            try:
                async with aiohttp.ClientSession() as client:
                    await _wait_up(client, url, gw)
                    for stream in (False, True) * 5:
                        ask = {**prompt, "stream": stream}
                        async with client.post(f"{url}/v1/completions", json=ask) as r:
                            assert r.status == 200
                            await r.read()
                    decode.delay_s = 1.5
                    slow = asyncio.create_task(client.post(f"{url}/v1/completions", json=prompt))
                    while len(decode.requests) < 11:
                        await asyncio.sleep(0.02)
                    os.kill(gw.pid, signal.SIGTERM)
                    await asyncio.sleep(0.3)
                    os.kill(gw.pid, signal.SIGTERM)
                    resp = await slow
                    assert resp.status == 200
                    assert await asyncio.to_thread(gw.wait, 15) == 0
            finally:
                if gw.poll() is None:
                    gw.kill()
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(lines) == 11 and {line["status"] for line in lines} == {200}

    run(body())


def _gateway_process(
    tmp_path: Path, model: Path, p_srv: TestServer, d_srv: TestServer, **options: object
) -> tuple[subprocess.Popen, str]:
    """`python -m router` in a process of its own, in front of the two stub servers."""
    port = _free_port()
    config = {
        "tasks": {
            "math": {
                "model_path": str(model),
                "prefill": [{"url": str(p_srv.make_url("")).rstrip("/"), "bootstrap_port": 9}],
            }
        },
        "decode": [str(d_srv.make_url("")).rstrip("/")],
        "port": port,
        "health_interval_s": 0,
        **options,
    }
    (tmp_path / "gw.json").write_text(json.dumps(config))
    argv = [sys.executable, "-m", "router", "--config", str(tmp_path / "gw.json")]
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ), f"http://127.0.0.1:{port}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_up(client: aiohttp.ClientSession, url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the gateway exited at start-up"
        try:
            async with client.get(f"{url}/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("gateway did not start")


def test_failed_probes_of_a_worker_that_just_served_do_not_count() -> None:
    async def body() -> None:
        state = StubState("decode", healthy=False)
        async with TestServer(stub_app(state)) as srv, aiohttp.ClientSession() as session:
            pool = DecodePool([str(srv.make_url("")).rstrip("/")])
            (slot,) = pool.slots
            failures: dict[str, int] = {}
            slot.last_ok = time.monotonic()  # it answered a request just now: busy, not dead
            for _ in range(3):
                await check_once(session, [("decode", pool)], 2.0, failures, recent_s=5.0)
            assert slot.healthy
            slot.last_ok -= 10.0  # nothing finished for a while: two failed probes and it is out
            await check_once(session, [("decode", pool)], 2.0, failures, recent_s=5.0)
            assert slot.healthy
            await check_once(session, [("decode", pool)], 2.0, failures, recent_s=5.0)
            assert not slot.healthy
            state.healthy = True
            await check_once(session, [("decode", pool)], 2.0, failures, recent_s=5.0)
            assert slot.healthy

    run(body())


def test_no_secret_or_prompt_reaches_the_logs(tiny_base: Path, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    log = tmp_path / "access.log"
    secrets = ["sk-right-key-1", "sk-wrong-key-2", "admin-token-3", "adm-wrong-4", "private prompt 5"]

    async def body() -> None:
        options = {"access_log": str(log), "access_log_flush_s": 0.05, "api_keys": [secrets[0]]}
        async with gateway(tiny_base, admin_token=secrets[2], **options) as (url, client, _, _d):
            chat = {**CHAT, "messages": [{"role": "user", "content": secrets[4]}]}
            for key, status in ((secrets[0], 200), (secrets[1], 401)):
                headers = {"Authorization": f"Bearer {key}"}
                async with client.post(f"{url}/v1/chat/completions", json=chat, headers=headers) as resp:
                    assert resp.status == status
            headers = {"Authorization": f"Bearer {secrets[3]}"}
            async with client.get(f"{url}/admin/workers", headers=headers) as resp:
                assert resp.status == 401
            await asyncio.sleep(0.2)

    with caplog.at_level("DEBUG"):
        run(body())
    logged = log.read_text() + caplog.text
    assert len(log.read_text().splitlines()) >= 2  # the requests were logged ...
    assert not [s for s in secrets if s in logged]  # ... without keys, tokens or prompts
