"""/v1/completions against stub servers: a list of prompts (one PD request per prompt and choice,
choices numbered prompt by prompt), token-id prompts, echo; streamed and not."""

from __future__ import annotations

from pathlib import Path

import openai
from transformers import AutoTokenizer

from tests.test_gateway import gateway, run


def test_a_list_of_prompts_gets_n_choices_each_in_prompt_order(tiny_base: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_base)

    async def body() -> None:
        async with gateway(tiny_base) as (url, _, prefill, decode):
            oai = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            prompts = ["one two", "three four five six"]
            out = await oai.completions.create(model="math", prompt=prompts, n=2, max_tokens=3)
            assert [c.index for c in out.choices] == [0, 1, 2, 3]
            sent = sorted(tuple(r["input_ids"]) for r in decode.requests)
            expected = sorted(tuple(tok.encode(s)) for s in prompts for _ in range(2))
            assert sent == expected and len(prefill.requests) == 4
            assert out.usage.prompt_tokens == sum(len(tok.encode(s)) for s in prompts)  # once each
            assert out.usage.completion_tokens == 4 * 3

            decode.requests.clear()
            ids = [[5, 6, 7], [8, 9]]
            out = await oai.completions.create(model="math", prompt=ids, max_tokens=2, echo=True)
            assert sorted(r["input_ids"] for r in decode.requests) == ids
            assert [c.text for c in out.choices] == [tok.decode(i) + "AA" for i in ids]

            stream = await oai.completions.create(
                model="math", prompt=prompts, max_tokens=2, echo=True, stream=True
            )
            texts = ["", ""]
            async for chunk in stream:
                for c in chunk.choices:
                    texts[c.index] += c.text
            assert texts == [s + "AA" for s in prompts]

    run(body())


def test_bad_prompts_and_echo_with_logprobs_are_400s(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            for extra, param in (
                ({"prompt": [1, "a"]}, "prompt"),
                ({"prompt": []}, "prompt"),
                ({"prompt": [[1, 2], "a"]}, "prompt"),
                ({"prompt": ["x"] * 65}, "prompt"),
                ({"prompt": "x", "echo": True, "logprobs": 1}, "echo"),
            ):
                async with client.post(f"{url}/v1/completions", json={"model": "math", **extra}) as resp:
                    out = await resp.json()
                    assert resp.status == 400, out
                    assert out["error"]["param"] == param, out
            assert not prefill.requests and not decode.requests

    run(body())
