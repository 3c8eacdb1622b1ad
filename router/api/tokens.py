"""/v1/tokenize and /v1/detokenize in SGLang's shapes, with each task's own tokenizer and chat
template (what the gateway itself sends the servers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from router.api import protocol as p
from router.api.http import decode_body, json_response
from router.api.messages import template_messages
from router.errors import ApiError

if TYPE_CHECKING:
    from router.gateway import Gateway


class TokenizeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    model: str
    prompt: str | list[str] | None = None
    messages: list[p.ChatMessage] | None = None  # rendered as for a chat completion
    add_special_tokens: bool = True  # prompts only, as in SGLang


class TokenizeResponse(msgspec.Struct):
    tokens: list[Any]  # ids, or a list of ids per prompt
    count: int | list[int]
    max_model_len: int


class DetokenizeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    model: str
    tokens: list[int | list[int]]  # ids, or a list of ids per text (msgspec: one array type per union)
    skip_special_tokens: bool = True


class DetokenizeResponse(msgspec.Struct):
    text: str | list[str]


def add_token_routes(app: web.Application, gw: Gateway) -> None:
    async def tokenize(request: web.Request) -> web.Response:
        req = await decode_body(request, TokenizeRequest)
        tok = gw.tokenizers[gw.task(req.model)]
        if (req.prompt is None) == (req.messages is None):
            raise ApiError(400, "give exactly one of prompt and messages", param="prompt")
        if req.messages is not None:
            tokens: list[int] | list[list[int]] = tok.chat_ids(template_messages(req.messages))
            count: int | list[int] = len(tokens)
        elif isinstance(req.prompt, str):
            tokens = tok.tokenizer.encode(req.prompt, add_special_tokens=req.add_special_tokens)
            count = len(tokens)
        else:
            tokens = [tok.tokenizer.encode(t, add_special_tokens=req.add_special_tokens) for t in req.prompt]
            count = [len(t) for t in tokens]
        limit = tok.context_len or tok.tokenizer.model_max_length
        return json_response(TokenizeResponse(tokens=tokens, count=count, max_model_len=int(limit)))

    async def detokenize(request: web.Request) -> web.Response:
        req = await decode_body(request, DetokenizeRequest)
        tok = gw.tokenizers[gw.task(req.model)].tokenizer
        vocab = len(tok)
        nested = [isinstance(t, list) for t in req.tokens]
        many = any(nested)
        if many and not all(nested):
            raise ApiError(400, "tokens: ids, or lists of ids, not both", param="tokens")
        batch: list[list[int]] = req.tokens if many else [req.tokens]  # type: ignore[assignment]
        if any(not 0 <= t < vocab for ids in batch for t in ids):
            raise ApiError(400, f"tokens: ids must be 0..{vocab - 1}", param="tokens")
        texts = [tok.decode(ids, skip_special_tokens=req.skip_special_tokens) for ids in batch]
        return json_response(DetokenizeResponse(text=texts if many else texts[0]))

    app.router.add_post("/v1/tokenize", tokenize)
    app.router.add_post("/v1/detokenize", detokenize)
