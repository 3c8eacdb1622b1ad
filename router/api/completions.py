"""/v1/completions: a prompt (text or token ids) or a list of them, n choices each, `echo`.

Each prompt is its own PD request per choice; OpenAI numbers the choices prompt by prompt
(prompt i, choice j -> index i * n + j), and so does the gateway, streamed or not.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from router.api import answers as a
from router.api import protocol as p
from router.api.http import (
    GATEWAY,
    TRACE,
    decode_body,
    include_usage,
    json_response,
    session_key,
    sse_response,
)
from router.api.openai_format import Choices, completion_logprobs, finish_reason, sse, usage_n
from router.api.sampling import choice_params, logprob_fields
from router.errors import ApiError
from router.tokenizer import TaskTokenizer
from router.trace import Job

MAX_PROMPTS = 64  # prompts in one request (each is n PD requests)


def prompt_ids(prompt: str | list[Any], tokenizer: TaskTokenizer) -> list[list[int]]:
    """The prompts' token ids: a string, a list of strings, token ids, or a list of token-id lists."""
    if isinstance(prompt, str):
        return [tokenizer.text_ids(prompt)]
    if prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return [prompt]
    if prompt and all(isinstance(s, str) for s in prompt):
        out = [tokenizer.text_ids(s) for s in prompt]
    elif prompt and all(isinstance(s, list) and all(type(t) is int for t in s) for s in prompt):
        out = [list(s) for s in prompt]
    else:
        raise ApiError(
            400, "prompt: a string, a list of strings, token ids, or a list of token-id lists", param="prompt"
        )
    if len(out) > MAX_PROMPTS:
        raise ApiError(400, f"prompt: at most {MAX_PROMPTS} prompts per request", param="prompt")
    return out


def add_completion_routes(app: web.Application, max_n: int) -> None:
    async def completions(request: web.Request) -> web.StreamResponse:
        gw = request.app[GATEWAY]
        req = await decode_body(request, p.CompletionRequest)
        task = request[TRACE].task = gw.task(req.model)
        tokenizer = gw.tokenizers[task]
        prompts = prompt_ids(req.prompt, tokenizer)
        choices = choice_params(req, tokenizer.stop_token_ids, max_n)
        extra = logprob_fields(req, chat=False)
        if req.echo and extra:
            raise ApiError(400, "echo with logprobs (the prompt's logprobs) is not supported", param="echo")
        session = session_key(request, req.user)
        runs = [(Job(task, ids, request[TRACE], extra, session), c) for ids in prompts for c in choices]
        # echo: each choice's text starts with its prompt's text
        echoes = [tokenizer.tokenizer.decode(ids) if req.echo else "" for ids in prompts for _ in choices]
        if req.stream:
            events = completion_events(
                gw.stream_all(runs), task, include_usage(req), req.n, bool(extra), echoes
            )
            return await sse_response(request, events)
        outs = await gw.run_all(runs)
        return json_response(completion_response(outs, task, bool(extra), req.n, echoes))

    app.router.add_post("/v1/completions", completions)


def completion_response(
    outs: list[dict[str, Any]], model: str, logprobs: bool, n: int, echoes: list[str]
) -> a.CompletionResponse:
    choices = [
        a.CompletionChoice(
            i,
            echoes[i] + o["text"],
            finish_reason(o["meta_info"]),
            completion_logprobs(o["meta_info"]) if logprobs else None,
        )
        for i, o in enumerate(outs)
    ]
    usage = usage_n([o["meta_info"] for o in outs], n)
    return a.CompletionResponse(f"cmpl-{uuid.uuid4().hex}", int(time.time()), model, choices, usage)


async def completion_events(
    chunks: AsyncIterator[tuple[int, dict[str, Any]]],
    model: str,
    include_usage: bool,
    n: int,
    logprobs: bool,
    echoes: list[str],
) -> AsyncIterator[bytes]:
    cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(
        index: int, text: str, reason: str | None = None, lp: a.CompletionLogprobs | None = None
    ) -> bytes:
        return sse(a.CompletionChunk(cid, created, model, [a.CompletionChoice(index, text, reason, lp)]))

    total = len(echoes)
    choices, pending_echo = Choices(total), list(echoes)
    async for index, raw in chunks:
        offset = len(choices.sent[index])
        delta = choices.delta(index, raw)
        lp = None
        if logprobs:
            lp = completion_logprobs(choices.meta[index], choices.new_logprobs_from(index), offset)
        if delta or (lp and lp.tokens) or pending_echo[index]:
            yield chunk(index, pending_echo[index] + delta, lp=lp)
            pending_echo[index] = ""
    for index in range(total):
        yield chunk(index, pending_echo[index], finish_reason(choices.meta[index]))
    if include_usage:
        yield sse(a.CompletionChunk(cid, created, model, [], usage_n(choices.meta, n)))
    yield b"data: [DONE]\n\n"
