"""/v1/responses against stub servers with the official openai client: text in, text out, streamed
(OpenAI's event sequence) and not; instructions and history as the chat template's messages;
text.format as the grammar on both legs; what it cannot honour is a 400 naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from transformers import AutoTokenizer

from tests.test_gateway import gateway, run


def test_text_in_text_out_streamed_and_not(tiny_base: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_base)

    async def body() -> None:
        async with gateway(tiny_base) as (url, _, prefill, decode):
            oai = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            out = await oai.responses.create(
                model="math", input="What is 2+2?", instructions="Be brief.", max_output_tokens=3
            )
            assert out.output_text == "AAA" and out.status == "incomplete"  # the stub stops at the limit
            assert out.incomplete_details.reason == "max_output_tokens"
            assert out.usage.output_tokens == 3 and out.usage.input_tokens == len(
                decode.requests[-1]["input_ids"]
            )
            expected = tok.apply_chat_template(
                [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
                add_generation_prompt=True,
                tokenize=False,
            )
            assert tok.decode(decode.requests[-1]["input_ids"]) == expected
            assert prefill.requests[-1] == decode.requests[-1]

            history = [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "again"}]},
            ]
            stream = await oai.responses.create(model="math", input=history, max_output_tokens=2, stream=True)
            kinds, deltas, final = [], "", None
            async for event in stream:
                kinds.append(event.type)
                if event.type == "response.output_text.delta":
                    deltas += event.delta
                if event.type in ("response.completed", "response.incomplete"):
                    final = event.response
            assert kinds[:4] == [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
            ]
            assert kinds[-4:] == [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.incomplete",
            ]
            assert deltas == "AA" and final.output_text == "AA"
            assert "hello" in tok.decode(decode.requests[-1]["input_ids"])

    run(body())


def test_text_format_reaches_both_legs(tiny_base: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}

    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            req = {
                "model": "math",
                "input": "x",
                "text": {"format": {"type": "json_schema", "name": "a", "schema": schema, "strict": True}},
            }
            async with client.post(f"{url}/v1/responses", json=req) as resp:
                assert resp.status == 200, await resp.text()
            for leg in (prefill, decode):
                assert leg.requests[-1]["sampling_params"]["json_schema"] == json.dumps(schema)

    run(body())


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"store": True}, "store"),
        ({"tools": [{"type": "function", "name": "f"}]}, "tools"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, None),
        ({"model": "nope"}, "model"),
    ],
)
def test_what_cannot_be_honoured_is_a_400(tiny_base: Path, extra: dict, param: str | None) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            async with client.post(
                f"{url}/v1/responses", json={"model": "math", "input": "x", **extra}
            ) as resp:
                out = await resp.json()
            assert resp.status == (404 if param == "model" else 400), out
            if param:
                assert out["error"]["param"] == param, out
            assert not prefill.requests and not decode.requests

    run(body())
