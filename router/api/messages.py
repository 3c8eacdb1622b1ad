"""OpenAI chat messages as the task's chat template takes them."""

from __future__ import annotations

import json
from typing import Any

from router.api import protocol as p
from router.errors import ApiError


def template_messages(messages: list[p.ChatMessage]) -> list[dict[str, Any]]:
    """Dicts for `apply_chat_template`: text parts joined with spaces (as SGLang does for
    templates that take string content), tool calls with their arguments as objects, null
    fields left out. A part a text-only model cannot take is a 400 naming it."""
    if not messages:
        raise ApiError(400, "messages must not be empty", param="messages")
    out = []
    for i, msg in enumerate(messages):
        item: dict[str, Any] = {"role": msg.role, "content": _text(msg, i)}
        if msg.name is not None:
            item["name"] = msg.name
        if msg.tool_calls:
            if msg.role != "assistant":
                raise ApiError(
                    400, f"messages[{i}]: tool_calls belong to assistant messages", param="messages"
                )
            item["tool_calls"] = [
                {
                    "id": c.id,
                    "type": c.type,
                    "function": {"name": c.function.name, "arguments": _arguments(c.function.arguments, i)},
                }
                for c in msg.tool_calls
            ]
        if msg.role == "tool":
            if msg.tool_call_id is None:
                raise ApiError(400, f"messages[{i}]: a tool message needs tool_call_id", param="messages")
            item["tool_call_id"] = msg.tool_call_id
        out.append(item)
    return out


def _arguments(arguments: str, i: int) -> dict[str, Any]:
    """A call's JSON arguments as the object templates render (`arguments | tojson`), as SGLang
    gives them: text would be rendered as one quoted string."""
    try:
        parsed = json.loads(arguments)
    except ValueError as err:
        raise ApiError(
            400, f"messages[{i}]: tool call arguments are not valid JSON ({err})", param="messages"
        ) from err
    if not isinstance(parsed, dict):
        raise ApiError(400, f"messages[{i}]: tool call arguments must be a JSON object", param="messages")
    return parsed


def _text(msg: p.ChatMessage, i: int) -> str:
    if msg.content is None:
        if msg.role == "assistant" and msg.tool_calls:
            return ""
        raise ApiError(
            400,
            f"messages[{i}]: content may be null only in an assistant turn with tool_calls",
            param="messages",
        )
    if isinstance(msg.content, str):
        return msg.content
    texts = []
    for j, part in enumerate(msg.content):
        kind = part.get("type")
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400,
                f"messages[{i}].content[{j}]: a {kind!r} part; this model takes text parts only",
                param=f"messages[{i}].content[{j}]",
            )
        texts.append(part["text"])
    return " ".join(texts)
