"""SGLang answers in OpenAI's shapes: finish reasons, usage, and streamed chunks (SSE)."""

from __future__ import annotations

from typing import Any

import msgspec

from router.api import answers as a


def finish_reason(meta: dict[str, Any]) -> str | None:
    kind = (meta.get("finish_reason") or {}).get("type")
    return {"length": "length", "stop": "stop", "abort": "stop"}.get(kind, kind)


def usage(meta: dict[str, Any]) -> a.Usage:
    """Token counts; cached_tokens is the prefill server's prefix-cache hit, which SGLang ships
    to the decode server with the KV (the decode side's own radix cache is off in PD mode)."""
    prompt, completion = meta.get("prompt_tokens", 0), meta.get("completion_tokens", 0)
    return a.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=a.PromptTokensDetails(cached_tokens=meta.get("cached_tokens", 0)),
    )


def sse(obj: Any) -> bytes:
    return b"data: " + msgspec.json.encode(obj) + b"\n\n"


def _logprob_entries(meta: dict[str, Any], start: int) -> list[tuple[str, float, list]]:
    """(token text, logprob, top [(logprob, id, text)]) per output token from `start`; SGLang keeps
    these lists whole in every streamed chunk (with return_text_in_logprobs)."""
    tokens = meta.get("output_token_logprobs") or []
    tops = meta.get("output_top_logprobs") or []
    return [
        (text or "", logprob, (tops[i] if i < len(tops) and tops[i] else []))
        for i, (logprob, _id, text) in enumerate(tokens[start:], start)
    ]


def chat_logprobs(meta: dict[str, Any], start: int = 0) -> a.ChatLogprobs:
    def top(entry: list) -> a.TopLogprob:
        text = entry[2] or ""
        return a.TopLogprob(text, entry[0], list(text.encode()))

    return a.ChatLogprobs(
        [
            a.TokenLogprob(text, logprob, list(text.encode()), [top(e) for e in tops])
            for text, logprob, tops in _logprob_entries(meta, start)
        ]
    )


def completion_logprobs(meta: dict[str, Any], start: int = 0, offset: int = 0) -> a.CompletionLogprobs:
    out = a.CompletionLogprobs([], [], [], [])
    for text, logprob, tops in _logprob_entries(meta, start):
        out.tokens.append(text)
        out.token_logprobs.append(logprob)
        out.top_logprobs.append({(e[2] or ""): e[0] for e in tops})  # type: ignore[union-attr]
        out.text_offset.append(offset)
        offset += len(text)
    return out


def logprob_count(meta: dict[str, Any]) -> int:
    return len(meta.get("output_token_logprobs") or [])


class Choices:
    """Per choice: the text and logprobs sent so far (SGLang streams the whole text in each
    chunk; OpenAI clients want what is new) and the latest meta_info."""

    def __init__(self, n: int) -> None:
        self.sent = [""] * n
        self.logprobs_sent = [0] * n
        self.meta: list[dict[str, Any]] = [{} for _ in range(n)]

    def new_logprobs_from(self, index: int) -> int:
        """Where this chunk's new logprob entries start; marks them sent."""
        start, self.logprobs_sent[index] = self.logprobs_sent[index], logprob_count(self.meta[index])
        return start

    def delta(self, index: int, chunk: dict[str, Any]) -> str:
        text = chunk.get("text", "")
        delta, self.sent[index] = text[len(self.sent[index]) :], text
        self.meta[index] = chunk.get("meta_info", self.meta[index])
        return delta


def usage_n(metas: list[dict[str, Any]], n: int = 1) -> a.Usage:
    """n choices of each prompt (metas in prompt order): each prompt counted once (and its cache
    hit), the completions summed."""
    first = usage(metas[0])
    per_prompt = [usage(m) for m in metas[::n]]
    first.prompt_tokens = sum(u.prompt_tokens for u in per_prompt)
    cached = sum(u.prompt_tokens_details.cached_tokens for u in per_prompt if u.prompt_tokens_details)
    first.prompt_tokens_details = a.PromptTokensDetails(cached_tokens=cached)
    completion = sum(m.get("completion_tokens", 0) for m in metas)
    first.completion_tokens, first.total_tokens = completion, first.prompt_tokens + completion
    return first
