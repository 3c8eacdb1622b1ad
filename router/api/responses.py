"""/v1/responses (OpenAI's API for new applications): text in, text out, streamed and not.

`input` (a string or messages) and `instructions` become a chat prompt under the task's template;
`max_output_tokens`, `temperature`, `top_p` and `text.format` (JSON schema) map as for chat. Each
answer is one `message` output item with one `output_text` part. The gateway keeps no responses:
`store: true`, `previous_response_id`, tools and the rest are 400s naming the field.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec
from aiohttp import web

from router.api import protocol as p
from router.api.http import GATEWAY, TRACE, decode_body, json_response, session_key, sse_response
from router.api.messages import template_messages
from router.api.openai_format import finish_reason, usage
from router.api.sampling import choice_params
from router.errors import ApiError
from router.trace import Job


class InputText(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: Literal["input_text", "output_text"]
    text: str
    annotations: list[Any] | None = None  # output_text parts sent back as history


class InputMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText]
    type: Literal["message"] = "message"
    id: str | None = None  # an earlier output item sent back
    status: str | None = None


class TextFormat(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    format: TextFormat = TextFormat()


class ResponsesRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    model: str
    input: str | list[InputMessage]
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    store: Literal[False] | None = None  # nothing is kept: true (OpenAI's default) cannot be honoured
    user: str | None = None
    metadata: dict[str, str] | None = None  # returned as given
    text: TextOptions | None = None


def chat_request(req: ResponsesRequest) -> p.ChatRequest:
    """The request as the chat completion it is (one choice)."""
    messages = (
        [p.ChatMessage(role="system", content=req.instructions)] if req.instructions is not None else []
    )
    if isinstance(req.input, str):
        messages.append(p.ChatMessage(role="user", content=req.input))
    else:
        for m in req.input:
            content = (
                m.content
                if isinstance(m.content, str)
                else [{"type": "text", "text": c.text} for c in m.content]
            )
            messages.append(p.ChatMessage(role=m.role, content=content))
    fmt = (req.text or TextOptions()).format
    response_format = None
    if fmt.type != "text":
        schema = (
            None
            if fmt.type == "json_object"
            else p.JsonSchemaFormat(name=fmt.name or "output", schema=fmt.schema)
        )
        response_format = p.ResponseFormat(type=fmt.type, json_schema=schema)
    return p.ChatRequest(
        model=req.model,
        messages=messages,
        max_tokens=req.max_output_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        user=req.user,
        response_format=response_format,
    )


def add_response_routes(app: web.Application, max_n: int) -> None:
    async def responses(request: web.Request) -> web.StreamResponse:
        gw = request.app[GATEWAY]
        req = await decode_body(request, ResponsesRequest)
        if req.max_output_tokens is not None and req.max_output_tokens < 1:
            raise ApiError(400, "max_output_tokens must be at least 1", param="max_output_tokens")
        task = request[TRACE].task = gw.task(req.model)
        chat = chat_request(req)
        tokenizer = gw.tokenizers[task]
        ids = tokenizer.chat_ids(template_messages(chat.messages))
        (params,) = choice_params(chat, tokenizer.stop_token_ids, max_n)
        job = Job(task, ids, request[TRACE], None, session_key(request, req.user))
        shape = _Shape(req, task)
        if req.stream:
            return await sse_response(request, shape.events(gw.stream(job, params)))
        return json_response(shape.response(await gw.run(job, params)))

    app.router.add_post("/v1/responses", responses)


class _Shape:
    """One response's objects, whole or as the stream of events that builds them."""

    def __init__(self, req: ResponsesRequest, model: str) -> None:
        self.req, self.model = req, model
        self.id, self.item_id = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.seq = 0

    def body(self, status: str, output: list[dict], meta: dict[str, Any] | None) -> dict[str, Any]:
        fmt = (self.req.text or TextOptions()).format
        out: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "model": self.model,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": self.req.instructions,
            "max_output_tokens": self.req.max_output_tokens,
            "metadata": self.req.metadata or {},
            "output": output,
            "parallel_tool_calls": False,
            "temperature": self.req.temperature,
            "top_p": self.req.top_p,
            "tool_choice": "none",
            "tools": [],
            "text": {"format": msgspec.to_builtins(fmt)},
            "store": False,
            "usage": None,
        }
        if meta is not None:
            u = usage(meta)
            cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0
            out["usage"] = {
                "input_tokens": u.prompt_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": u.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": u.total_tokens,
            }
        return out

    def part(self, text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def item(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [self.part(text)]
        return {
            "type": "message",
            "id": self.item_id,
            "status": status,
            "role": "assistant",
            "content": content,
        }

    @staticmethod
    def status(meta: dict[str, Any]) -> str:
        return "incomplete" if finish_reason(meta) == "length" else "completed"

    def response(self, out: dict[str, Any]) -> dict[str, Any]:
        status = self.status(out["meta_info"])
        return self.body(status, [self.item(status, out["text"])], out["meta_info"])

    def event(self, kind: str, **fields: Any) -> bytes:
        self.seq += 1
        data = msgspec.json.encode({"type": kind, "sequence_number": self.seq - 1, **fields})
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    async def events(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
        """The event sequence OpenAI sends; nothing before the first token (a failure before it
        is an HTTP error), an `error` event for a failure after."""
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        text, meta, started = "", {}, False
        try:
            async for chunk in chunks:
                if not started:
                    started = True
                    yield self.event("response.created", response=self.body("in_progress", [], None))
                    yield self.event("response.in_progress", response=self.body("in_progress", [], None))
                    yield self.event(
                        "response.output_item.added", output_index=0, item=self.item("in_progress", None)
                    )
                    yield self.event("response.content_part.added", **where, part=self.part(""))
                whole, meta = chunk.get("text", ""), chunk.get("meta_info", meta)
                if len(whole) > len(text):
                    yield self.event(
                        "response.output_text.delta", **where, delta=whole[len(text) :], logprobs=[]
                    )
                    text = whole
        except ApiError as err:
            if not started:
                raise
            yield self.event("error", code=err.kind, message=str(err), param=None)
            return
        finally:
            await chunks.aclose()
        status = self.status(meta)
        yield self.event("response.output_text.done", **where, text=text, logprobs=[])
        yield self.event("response.content_part.done", **where, part=self.part(text))
        yield self.event("response.output_item.done", output_index=0, item=self.item(status, text))
        final = self.body(status, [self.item(status, text)], meta)
        yield self.event(f"response.{status}", response=final)
