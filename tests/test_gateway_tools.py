"""Tools, reasoning and structured outputs against stub servers, with the official openai client:
the task's template renders the tools, tool_choice required or named puts SGLang's grammar on both
legs, the task's parsers (qwen25 calls, qwen3 thinking) split the answer into reasoning_content,
content and tool calls, whole and streamed; response_format, regex and ebnf reach both legs as
SGLang's sampling parameters."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from tests.test_gateway import gateway, run

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
CALL = [
    "Sure",
    ".",
    "<tool_call>",
    "\n",
    '{"name": "get_weather", ',
    '"arguments": {"city',
    '": "Par',
    'is"}}',
    "\n",
    "</tool_call>",
]


def client_for(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_tools_rendered_and_calls_parsed_whole_and_streamed(tiny_qwen2: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_qwen2, tool_call_parser="qwen25") as (url, _, prefill, decode):
            decode.script = CALL
            oai = client_for(url)
            out = await oai.chat.completions.create(
                model="math", messages=ASK, tools=[WEATHER, TIME], max_tokens=32
            )
            choice = out.choices[0]
            assert choice.finish_reason == "tool_calls"
            assert choice.message.content == "Sure."
            (call,) = choice.message.tool_calls
            assert call.type == "function" and call.id.startswith("call_")
            assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
                "city": "Paris"
            }
            sent = decode.requests[-1]
            assert prefill.requests[-1] == sent  # one body, both legs
            params = sent["sampling_params"]
            assert params["skip_special_tokens"] is False  # the call markers survive detokenizing
            assert not {"structural_tag", "json_schema"} & set(params)  # auto: no grammar
            prompt = decode_ids(tiny_qwen2, sent["input_ids"])
            assert (
                "<tools>" in prompt and '"name": "get_weather"' in prompt and '"name": "get_time"' in prompt
            )

            stream = await oai.chat.completions.create(
                model="math", messages=ASK, tools=[WEATHER], max_tokens=32, stream=True
            )
            content, calls, reasons = "", {}, []
            async for chunk in stream:
                delta = chunk.choices[0].delta
                content += delta.content or ""
                for c in delta.tool_calls or []:
                    if c.function.name:  # the first delta of a call: id, type and name, once
                        assert c.index not in calls and c.id.startswith("call_") and c.type == "function"
                        calls[c.index] = [c.function.name, ""]
                    calls[c.index][1] += c.function.arguments or ""
                reasons.append(chunk.choices[0].finish_reason)
            assert content == "Sure."
            assert list(calls) == [0] and calls[0][0] == "get_weather"
            assert json.loads(calls[0][1]) == {"city": "Paris"}
            assert reasons[-1] == "tool_calls" and not any(reasons[:-1])

    run(body())


TWO_CALLS = [
    *CALL[2:],
    "\n",
    "<tool_call>",
    "\n",
    '{"name": "get_time", "arguments": {}}',
    "\n",
    "</tool_call>",
]


def test_parallel_tool_calls_false_keeps_the_first_call_under_auto(tiny_qwen2: Path) -> None:
    """Under `auto` no grammar holds the model to one call; the gateway returns the first only."""

    async def body() -> None:
        async with gateway(tiny_qwen2, tool_call_parser="qwen25") as (url, _, _prefill, decode):
            decode.script = TWO_CALLS
            oai = client_for(url)
            ask = {"model": "math", "messages": ASK, "tools": [WEATHER, TIME], "max_tokens": 64}
            both = await oai.chat.completions.create(**ask)
            assert [c.function.name for c in both.choices[0].message.tool_calls] == [
                "get_weather",
                "get_time",
            ]
            one = await oai.chat.completions.create(**ask, parallel_tool_calls=False)
            assert one.choices[0].finish_reason == "tool_calls"
            assert [c.function.name for c in one.choices[0].message.tool_calls] == ["get_weather"]
            stream = await oai.chat.completions.create(**ask, parallel_tool_calls=False, stream=True)
            names, args = [], ""
            async for chunk in stream:
                for c in chunk.choices[0].delta.tool_calls or []:
                    assert c.index == 0
                    names += [c.function.name] if c.function.name else []
                    args += c.function.arguments or ""
            assert names == ["get_weather"] and json.loads(args) == {"city": "Paris"}

    run(body())


def decode_ids(model: Path, ids: list[int]) -> str:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model).decode(ids)


def test_required_and_named_tool_choice_put_the_grammar_on_both_legs(tiny_qwen2: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_qwen2, tool_call_parser="qwen25") as (url, _, prefill, decode):
            decode.script = CALL[2:]
            oai = client_for(url)
            for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
                out = await oai.chat.completions.create(
                    model="math", messages=ASK, tools=[WEATHER, TIME], tool_choice=choice, max_tokens=32
                )
                assert out.choices[0].message.tool_calls[0].function.name == "get_weather"
                assert out.choices[0].message.content is None  # only a call: content null
                sent = decode.requests[-1]
                assert prefill.requests[-1]["sampling_params"] == sent["sampling_params"]
                tag = json.loads(sent["sampling_params"]["structural_tag"])
                begins = [s["begin"] for s in tag["structures"]]
                assert tag["triggers"] == ["<tool_call>"] and tag.get("at_least_one") is True
                if choice == "required":
                    assert len(begins) == 2  # any of the tools
                else:
                    assert len(begins) == 1 and "get_weather" in begins[0]  # that one only
                    prompt = decode_ids(tiny_qwen2, sent["input_ids"])
                    assert "get_weather" in prompt and "get_time" not in prompt  # as SGLang renders it

    run(body())


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameterz": {}}}]}, "tools[0]"),
        ({"tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
        (
            {
                "messages": [
                    *ASK,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "{oops"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                ]
            },
            "messages",
        ),
    ],
)
def test_tool_requests_that_cannot_be_honoured_are_400s(tiny_qwen2: Path, extra: dict, param: str) -> None:
    async def body() -> None:
        async with gateway(tiny_qwen2, tool_call_parser="qwen25") as (url, client, prefill, decode):
            req = {"model": "math", "messages": ASK, "tools": [WEATHER], **extra}
            async with client.post(f"{url}/v1/chat/completions", json=req) as resp:
                out = await resp.json()
            assert resp.status == 400, out
            assert out["error"]["param"] == param, out
            assert not prefill.requests and not decode.requests

    run(body())


def test_tool_history_is_rendered_with_arguments_as_objects(tiny_qwen2: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_qwen2, tool_call_parser="qwen25") as (url, _, _prefill, decode):
            decode.script = ["It is sunny."]
            history = [
                *ASK,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
            ]
            out = await client_for(url).chat.completions.create(
                model="math", messages=history, tools=[WEATHER]
            )
            assert out.choices[0].message.content == "It is sunny." and out.choices[0].finish_reason == "stop"
            assert not out.choices[0].message.tool_calls
            prompt = decode_ids(tiny_qwen2, decode.requests[-1]["input_ids"])
            assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt  # not a quoted string
            assert "<tool_response>\nsunny, 21 C\n</tool_response>" in prompt

    run(body())


SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


@pytest.mark.parametrize(
    "extra, parameter, grammar",
    [
        ({"response_format": {"type": "json_object"}}, "json_schema", '{"type": "object"}'),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": SCHEMA, "strict": True},
                }
            },
            "json_schema",
            json.dumps(SCHEMA),
        ),
        ({"regex": "(yes|no)"}, "regex", "(yes|no)"),
        ({"ebnf": 'root ::= "yes" | "no"'}, "ebnf", 'root ::= "yes" | "no"'),
    ],
)
def test_structured_outputs_reach_both_legs(
    tiny_base: Path, extra: dict, parameter: str, grammar: str
) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            for path, req in (
                ("chat/completions", {"model": "math", "messages": ASK, **extra}),
                ("completions", {"model": "math", "prompt": "x", **extra}),
            ):
                async with client.post(f"{url}/v1/{path}", json=req) as resp:
                    assert resp.status == 200, await resp.text()
                for leg in (prefill, decode):
                    params = leg.requests[-1]["sampling_params"]
                    assert params[parameter] == grammar
                    assert not {"json_schema", "regex", "ebnf", "structural_tag"} - {parameter} & set(params)

    run(body())


THOUGHT = ["<think>", "Let", " me", " see", "</think>", "It", " is", " sunny."]


def test_reasoning_is_split_from_the_answer_whole_and_streamed(tiny_qwen2: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_qwen2, tool_call_parser="qwen25", reasoning_parser="qwen3") as (
            url,
            _,
            prefill,
            decode,
        ):
            oai = client_for(url)
            decode.script = THOUGHT
            out = await oai.chat.completions.create(model="math", messages=ASK, max_tokens=32)
            message = out.choices[0].message
            assert message.reasoning_content == "Let me see" and message.content == "It is sunny."
            assert decode.requests[-1]["require_reasoning"] is True  # a grammar would wait for </think>
            assert prefill.requests[-1] == decode.requests[-1]

            stream = await oai.chat.completions.create(model="math", messages=ASK, max_tokens=32, stream=True)
            thought, content = "", ""
            async for chunk in stream:
                delta = chunk.choices[0].delta
                thought += getattr(delta, "reasoning_content", None) or ""
                content += delta.content or ""
            assert (thought, content) == ("Let me see", "It is sunny.")

            out = await oai.chat.completions.create(
                model="math", messages=ASK, max_tokens=32, extra_body={"separate_reasoning": False}
            )
            assert out.choices[0].message.content == "".join(THOUGHT)
            off = {"chat_template_kwargs": {"enable_thinking": False}}
            await oai.chat.completions.create(model="math", messages=ASK, max_tokens=32, extra_body=off)
            assert "require_reasoning" not in decode.requests[-1]

            decode.script = ["<think>", "a call", "</think>", *CALL[2:]]  # thinking, then a tool call
            out = await oai.chat.completions.create(
                model="math", messages=ASK, tools=[WEATHER], max_tokens=32
            )
            message = out.choices[0].message
            assert (
                message.reasoning_content == "a call" and message.tool_calls[0].function.name == "get_weather"
            )
            assert out.choices[0].finish_reason == "tool_calls"

    run(body())
