"""The OpenAI request surface against stub servers: every sampling field reaches both PD legs
under SGLang's name, bad values and fields the gateway cannot honour are 400s naming them (and
reach no server), messages come as OpenAI clients send them, /v1/models/{id}."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_gateway import CHAT, gateway, run

FIELDS = {
    "frequency_penalty": 0.5,
    "presence_penalty": -0.25,
    "repetition_penalty": 1.1,
    "top_k": 5,
    "min_p": 0.05,
    "min_tokens": 2,
    "logit_bias": {"7": 3.5, "11": -100},
    "stop_token_ids": [9],
    "skip_special_tokens": False,
    "spaces_between_special_tokens": False,
    "no_stop_trim": True,
    "seed": 3,
    "top_p": 0.9,
    "stop": ["\n\n"],
}
SGLANG_NAMES = {"min_tokens": "min_new_tokens", "seed": "sampling_seed"}


def test_every_sampling_field_reaches_both_legs(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            for path, extra in (("chat/completions", {}), ("completions", {"prompt": "x"})):
                req = {**CHAT, **FIELDS, **extra}
                if extra:
                    req.pop("messages")
                async with client.post(f"{url}/v1/{path}", json=req) as resp:
                    assert resp.status == 200, await resp.text()
                sent = prefill.requests[-1]["sampling_params"]
                assert sent == decode.requests[-1]["sampling_params"]  # one body for both legs
                for field, value in FIELDS.items():
                    assert sent[SGLANG_NAMES.get(field, field)] == (
                        sorted({2, 9}) if field == "stop_token_ids" else value
                    )

    run(body())


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"top_k": 0}, "top_k"),
        ({"min_p": 1.5}, "min_p"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 101}}, "logit_bias"),
        # tools for a task without a tool_call_parser: its calls could not be parsed
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),  # and no tools
        ({"response_format": {"type": "json_schema"}}, "response_format"),  # no schema object
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "bogus"}},
                }
            },
            "response_format",
        ),
        ({"response_format": {"type": "yaml"}}, None),
        ({"regex": "[a-"}, "regex"),
        ({"ebnf": "root ::= undefined_rule"}, "ebnf"),
        ({"regex": "a+", "ebnf": 'root ::= "a"'}, "ebnf"),  # one grammar per answer
        ({"frequency_penaltyy": 1}, "frequency_penaltyy"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": None}]}, "messages"),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "hi", "tool_calls": []}]}, None),  # empty: fine
        ({"messages": [{"role": "robot", "content": "hi"}]}, None),
    ],
)
def test_bad_values_and_unhonoured_fields_are_400s_naming_them(
    tiny_base: Path, extra: dict, param: str | None
) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, decode):
            async with client.post(f"{url}/v1/chat/completions", json={**CHAT, **extra}) as resp:
                out = await resp.json()
            if param is None and "tool_calls" in str(extra):
                assert resp.status == 200
                return
            assert resp.status == 400, out
            if param is not None:
                assert out["error"]["param"] == param, out
            assert not prefill.requests and not decode.requests

    run(body())


def test_messages_as_openai_clients_send_them(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, _):

            async def ids(messages: list[dict]) -> list[int]:
                async with client.post(
                    f"{url}/v1/chat/completions", json={**CHAT, "messages": messages}
                ) as resp:
                    assert resp.status == 200, await resp.text()
                return prefill.requests[-1]["input_ids"]

            plain = await ids([{"role": "user", "content": "two plus two"}])
            parts = [{"type": "text", "text": "two plus"}, {"type": "text", "text": "two"}]
            assert await ids([{"role": "user", "content": parts}]) == plain  # joined with a space
            history = [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "add 2 and 2", "name": "ann"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "4"},
            ]
            assert len(await ids(history)) > len(plain)

    run(body())


def test_one_model_by_id(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, _, _d):
            async with client.get(f"{url}/v1/models/math") as resp:
                card = await resp.json()
            assert resp.status == 200 and card["id"] == "math" and card["object"] == "model"
            async with client.get(f"{url}/v1/models/nope") as resp:
                assert resp.status == 404 and (await resp.json())["error"]["code"] == "model_not_found"
        async with gateway(tiny_base, api_keys=["sk-1"]) as (url, client, _, _d):
            async with client.get(f"{url}/v1/models/math") as resp:
                assert resp.status == 401
            async with client.get(f"{url}/v1/models/math", headers={"Authorization": "Bearer sk-1"}) as resp:
                assert resp.status == 200

    run(body())


def test_tokenize_and_detokenize_in_sglangs_shapes(tiny_base: Path) -> None:
    async def body() -> None:
        async with gateway(tiny_base) as (url, client, prefill, _):
            async with client.post(f"{url}/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 200
            sent = prefill.requests[-1]["input_ids"]
            async with client.post(
                f"{url}/v1/tokenize", json={"model": "math", "messages": CHAT["messages"]}
            ) as resp:
                out = await resp.json()
            assert out["tokens"] == sent and out["count"] == len(sent) and out["max_model_len"] > 0
            req = {"model": "math", "prompt": ["ab", "abc"], "add_special_tokens": False}
            async with client.post(f"{url}/v1/tokenize", json=req) as resp:
                batch = await resp.json()
            assert [len(t) for t in batch["tokens"]] == batch["count"]
            back = {"model": "math", "tokens": batch["tokens"]}
            async with client.post(f"{url}/v1/detokenize", json=back) as resp:
                assert (await resp.json()) == {"text": ["ab", "abc"]}
            for bad, param in (
                ({"model": "math"}, "prompt"),
                ({"model": "math", "prompt": "x", "tools": []}, "tools"),
            ):
                async with client.post(f"{url}/v1/tokenize", json=bad) as resp:
                    assert resp.status == 400 and (await resp.json())["error"]["param"] == param
            async with client.post(f"{url}/v1/detokenize", json={"model": "math", "tokens": [10**9]}) as resp:
                assert resp.status == 400

    run(body())
