"""SGLang answers in OpenAI's shapes: finish reasons, usage, and streamed chunks (SSE)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from router import protocol as p


def finish_reason(meta: dict[str, Any]) -> str | None:
    kind = (meta.get("finish_reason") or {}).get("type")
    return {"length": "length", "stop": "stop", "abort": "stop"}.get(kind, kind)


def usage(meta: dict[str, Any]) -> p.Usage:
    """Token counts; cached_tokens is the prefill server's prefix-cache hit, which SGLang ships
    to the decode server with the KV (the decode side's own radix cache is off in PD mode)."""
    prompt, completion = meta.get("prompt_tokens", 0), meta.get("completion_tokens", 0)
    return p.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=p.PromptTokensDetails(cached_tokens=meta.get("cached_tokens", 0)),
    )


def sse(obj: Any) -> bytes:
    return b"data: " + msgspec.json.encode(obj) + b"\n\n"


async def _deltas(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """SGLang streams the whole text so far in each chunk; OpenAI clients want what is new."""
    sent = ""
    async for chunk in chunks:
        text = chunk.get("text", "")
        delta, sent = text[len(sent) :], text
        yield delta, chunk.get("meta_info", {})


async def chat_events(
    chunks: AsyncIterator[dict[str, Any]], model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: p.Delta, reason: str | None = None) -> bytes:
        return sse(p.ChatChunk(cid, created, model, [p.ChatChunkChoice(0, delta, reason)]))

    meta: dict[str, Any] = {}
    first = True
    async for delta, chunk_meta in _deltas(chunks):
        meta = chunk_meta
        if first:
            yield chunk(p.Delta(role="assistant", content=""))
            first = False
        if delta:
            yield chunk(p.Delta(content=delta))
    yield chunk(p.Delta(), finish_reason(meta))
    if include_usage:
        yield sse(p.ChatChunk(cid, created, model, [], usage(meta)))
    yield b"data: [DONE]\n\n"


async def completion_events(
    chunks: AsyncIterator[dict[str, Any]], model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    meta: dict[str, Any] = {}
    async for delta, chunk_meta in _deltas(chunks):
        meta = chunk_meta
        if delta:
            yield sse(p.CompletionChunk(cid, created, model, [p.CompletionChoice(0, delta, None)]))
    yield sse(p.CompletionChunk(cid, created, model, [p.CompletionChoice(0, "", finish_reason(meta))]))
    if include_usage:
        yield sse(p.CompletionChunk(cid, created, model, [], usage(meta)))
    yield b"data: [DONE]\n\n"
