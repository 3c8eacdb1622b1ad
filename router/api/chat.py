"""/v1/chat/completions: the task's template over the messages (and tools), n choices, the answer
split into reasoning, content and tool calls (router/api/parsing.py), streamed or whole."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web

from router.api import answers as a
from router.api import protocol as p
from router.api import tools
from router.api.http import (
    GATEWAY,
    TRACE,
    decode_body,
    include_usage,
    json_response,
    session_key,
    sse_response,
)
from router.api.messages import template_messages
from router.api.openai_format import Choices, chat_logprobs, finish_reason, sse, usage_n
from router.api.parsing import Parsing
from router.api.sampling import choice_params, logprob_fields
from router.trace import Job


def add_chat_routes(app: web.Application, max_n: int) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        gw = request.app[GATEWAY]
        req = await decode_body(request, p.ChatRequest)
        task = request[TRACE].task = gw.task(req.model)
        tokenizer = gw.tokenizers[task]
        calls = tools.plan(req, gw.tool_parsers.get(task), task, tokenizer.tokenizer)
        template_tools = calls.template_tools if calls else None
        ids = tokenizer.chat_ids(template_messages(req.messages), template_tools, req.chat_template_kwargs)
        choices = choice_params(req, tokenizer.stop_token_ids, max_n, calls)
        reasoning = gw.reasoning_parsers.get(task)
        extra = {**logprob_fields(req, chat=True), **thinking_fields(reasoning, req)}
        parsing = Parsing(reasoning if req.separate_reasoning else None, calls)
        job = Job(task, ids, request[TRACE], extra, session_key(request, req.user))
        logprobs = bool(extra.get("return_logprob"))
        if req.stream:
            events = chat_events(
                gw.stream_all([(job, c) for c in choices]), task, include_usage(req), req.n, logprobs, parsing
            )
            return await sse_response(request, events)
        return json_response(
            chat_response(await gw.run_all([(job, c) for c in choices]), task, logprobs, parsing)
        )

    app.router.add_post("/v1/chat/completions", chat)


def thinking_fields(reasoning: str | None, req: p.ChatRequest) -> dict[str, Any]:
    """A reasoning task's answer starts with its thinking unless the template was told not to
    (`chat_template_kwargs.enable_thinking: false`): the servers' grammar then waits for the
    end of the thinking (SGLang's `require_reasoning`, with --reasoning-parser on the servers)."""
    if reasoning is None or (req.chat_template_kwargs or {}).get("enable_thinking") is False:
        return {}
    return {"require_reasoning": True}


def _chat_choice(index: int, out: dict[str, Any], logprobs: bool, parsing: Parsing) -> a.ChatChoice:
    reasoning, text, calls = parsing.whole(out["text"])
    reason = finish_reason(out["meta_info"])
    message = a.ChatChoiceMessage("assistant", text, None, reasoning)
    if calls:  # content null when the answer is only calls, as OpenAI sends it
        message.content, message.tool_calls = text or None, calls
        reason = "tool_calls" if reason == "stop" else reason
    lp = chat_logprobs(out["meta_info"]) if logprobs else None
    return a.ChatChoice(index, message, reason, lp)


def chat_response(outs: list[dict[str, Any]], model: str, logprobs: bool, parsing: Parsing) -> a.ChatResponse:
    """One JSON answer from the decode servers' answers, one per choice."""
    choices = [_chat_choice(i, o, logprobs, parsing) for i, o in enumerate(outs)]
    usage = usage_n([o["meta_info"] for o in outs], n=len(outs))  # n choices of one prompt
    return a.ChatResponse(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model, choices, usage)


async def chat_events(
    chunks: AsyncIterator[tuple[int, dict[str, Any]]],
    model: str,
    include_usage: bool,
    n: int,
    logprobs: bool,
    parsing: Parsing,
) -> AsyncIterator[bytes]:
    """Chat chunks: per choice a role delta, then reasoning, content and tool-call deltas (each
    token's text through the task's parsers), and the finish reason."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(
        index: int, delta: a.Delta, reason: str | None = None, lp: a.ChatLogprobs | None = None
    ) -> bytes:
        return sse(a.ChatChunk(cid, created, model, [a.ChatChunkChoice(index, delta, reason, lp)]))

    def pieces(
        index: int, thought: str, text: str, calls: list[a.AnswerToolCall], lp: a.ChatLogprobs | None
    ) -> Iterator[bytes]:
        if thought:
            yield chunk(index, a.Delta(reasoning_content=thought))
        if text or (lp and lp.content):
            yield chunk(index, a.Delta(content=text), lp=lp)
        for call in calls:
            yield chunk(index, a.Delta(tool_calls=[call]))

    choices, started = Choices(n), [False] * n
    streams = [parsing.stream() for _ in range(n)]
    async for index, raw in chunks:
        delta = choices.delta(index, raw)
        if not started[index]:
            yield chunk(index, a.Delta(role="assistant", content=""))
            started[index] = True
        lp = chat_logprobs(choices.meta[index], choices.new_logprobs_from(index)) if logprobs else None
        for event in pieces(index, *streams[index].feed(delta), lp):
            yield event
    for index in range(n):
        for event in pieces(index, *streams[index].end(), None):
            yield event
        reason = finish_reason(choices.meta[index])
        yield chunk(index, a.Delta(), "tool_calls" if streams[index].called and reason == "stop" else reason)
    if include_usage:
        yield sse(a.ChatChunk(cid, created, model, [], usage_n(choices.meta, n)))
    yield b"data: [DONE]\n\n"
