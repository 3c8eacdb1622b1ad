"""n choices per request: n independent PD requests, merged into one answer or one stream."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_gateway import CHAT, gateway, run


def test_n_choices_are_n_pd_requests_with_successive_seeds(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            req = {**CHAT, "n": 3, "seed": 7, "temperature": 0.8}
            async with client.post(f"{url}/v1/chat/completions", json=req) as resp:
                assert resp.status == 200
                out = await resp.json()
            assert [c["index"] for c in out["choices"]] == [0, 1, 2]
            assert all(c["message"]["content"] == "AAA" for c in out["choices"])
            assert out["usage"]["completion_tokens"] == 9
            assert out["usage"]["prompt_tokens"] == len(decode.requests[0]["input_ids"])
            seeds = sorted(r["sampling_params"]["sampling_seed"] for r in decode.requests)
            assert seeds == [7, 8, 9] and len({r["rid"] for r in decode.requests}) == 3
            completion = {k: v for k, v in req.items() if k != "messages"}
            async with client.post(f"{url}/v1/completions", json={**completion, "prompt": "x"}) as resp:
                assert [c["text"] for c in (await resp.json())["choices"]] == ["AAA"] * 3

    run(body())


def test_streamed_choices_carry_their_index_and_usage_sums(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            req = {**CHAT, "n": 2, "stream": True, "stream_options": {"include_usage": True}}
            async with client.post(f"{url}/v1/chat/completions", json=req) as resp:
                assert resp.status == 200
                events = [
                    json.loads(line[6:])
                    for line in (await resp.text()).splitlines()
                    if line.startswith("data: {")
                ]
            text = {0: "", 1: ""}
            finished = {}
            for event in events:
                for choice in event["choices"]:
                    text[choice["index"]] += choice["delta"].get("content") or ""
                    if choice["finish_reason"]:
                        finished[choice["index"]] = choice["finish_reason"]
            assert text == {0: "AAA", 1: "AAA"} and finished == {0: "length", 1: "length"}
            assert events[-1]["usage"]["completion_tokens"] == 6

    run(body())


def test_n_out_of_range_is_400_and_a_failing_choice_fails_the_request(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            for n in (0, 9):
                async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "n": n}) as resp:
                    assert resp.status == 400 and (await resp.json())["error"]["param"] == "n"
            prefill.fail_with = 500
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, "n": 2}) as resp:
                assert resp.status == 502
            assert sorted(decode.aborted) == sorted(r["rid"] for r in decode.requests)

    run(body())


def test_logprobs_in_openai_shapes_streamed_and_not(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            req = {**CHAT, "logprobs": True, "top_logprobs": 2}
            async with client.post(f"{url}/v1/chat/completions", json=req) as resp:
                content = (await resp.json())["choices"][0]["logprobs"]["content"]
            assert decode.requests[-1]["return_logprob"] and decode.requests[-1]["top_logprobs_num"] == 2
            assert [round(c["logprob"], 3) for c in content] == [-0.1, -0.2, -0.3]
            assert content[0]["token"] == "A" and content[0]["bytes"] == [65]
            assert [t["token"] for t in content[1]["top_logprobs"]] == ["A", "B"]

            async with client.post(f"{url}/v1/chat/completions", json={**req, "stream": True}) as resp:
                events = [
                    json.loads(x[6:]) for x in (await resp.text()).splitlines() if x.startswith("data: {")
                ]
            streamed = [
                e
                for ev in events
                for c in ev["choices"]
                for e in (c.get("logprobs") or {}).get("content", [])
            ]
            assert [round(e["logprob"], 3) for e in streamed] == [-0.1, -0.2, -0.3]

            comp = {"model": "math", "prompt": "x", "max_tokens": 2, "logprobs": 1}
            async with client.post(f"{url}/v1/completions", json=comp) as resp:
                lp = (await resp.json())["choices"][0]["logprobs"]
            assert lp["tokens"] == ["A", "A"] and lp["text_offset"] == [0, 1]
            assert lp["top_logprobs"] == [{"A": -0.1}, {"A": -0.2}]

            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert (await resp.json())["choices"][0]["logprobs"] is None
            assert "return_logprob" not in decode.requests[-1]
            for bad in ({"top_logprobs": 2}, {"logprobs": True, "top_logprobs": 21}, {"logprobs": 3}):
                async with client.post(f"{url}/v1/chat/completions", json={**CHAT, **bad}) as resp:
                    assert resp.status == 400, bad

    run(body())
