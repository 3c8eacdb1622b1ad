"""Tool calling with SGLang's own pieces: its `Tool` model renders the tools for the task's chat
template as SGLang's OpenAI layer does, its `FunctionCallParser` (the task's `tool_call_parser`)
gives the grammar for `tool_choice` required or named, and parses the calls out of the answer,
whole or as it streams (name once, then argument pieces).

One body to both PD legs carries the grammar, so the prefill server's first token is already
under it. SGLang's imports cost seconds: they happen once, at start-up (router/parsers.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from router.api import answers as a
from router.api import protocol as p
from router.errors import ApiError


@dataclass(frozen=True)
class ToolPlan:
    """One request's tools: what the template renders, the grammar, how the answer is parsed."""

    sglang_tools: list[Any]  # sglang Tool objects: every tool of the request (the parser's)
    template_tools: list[dict[str, Any]]  # as the template gets them (a named choice: that tool only)
    choice: Any  # "auto", "required" or an sglang ToolChoice
    parser_name: str
    tokenizer: Any
    constraint: tuple[str, str] | None  # (sampling parameter, grammar)
    single_call: bool = False  # parallel_tool_calls false: calls after the first are dropped

    @property
    def required(self) -> bool:
        return self.choice != "auto"

    def parser(self) -> Any:
        from sglang.srt.function_call.function_call_parser import FunctionCallParser

        return FunctionCallParser(self.sglang_tools, self.parser_name, self.tokenizer, self.choice)

    def native(self, parser: Any) -> bool:
        """Whether the answer is in the model's own call format (else a JSON array of calls)."""
        return not self.required or parser.owns_tool_format()


def plan(req: p.ChatRequest, parser_name: str | None, task: str, tokenizer: Any) -> ToolPlan | None:
    """The request's tool plan, or None when no tool may be called. 400s as SGLang gives them:
    required or a named tool without tools, a name not among them, tools for a task whose
    template output no parser is configured for."""
    tools, choice = req.tools or [], req.tool_choice
    named = choice.function.name if isinstance(choice, p.NamedToolChoice) else None
    if not tools:
        if choice == "required" or named:
            raise ApiError(
                400, "tool_choice: a tool is required, but no tools were given", param="tool_choice"
            )
        return None
    if choice == "none":
        return None
    if parser_name is None:
        raise ApiError(
            400,
            f"tools: task '{task}' has no tool_call_parser configured, so calls could not be parsed",
            param="tools",
        )
    checked = _checked(tools)
    if named and named not in {t.function.name for t in checked}:
        raise ApiError(400, f"tool_choice: no tool named {named!r} in tools", param="tool_choice")
    from sglang.srt.entrypoints.openai.protocol import Tool, ToolChoice
    from sglang.srt.function_call.function_call_parser import FunctionCallParser
    from sglang.srt.function_call.utils import get_json_schema_constraint

    try:
        sglang_tools = [Tool.model_validate(t) for t in tools]
    except ValueError as err:
        raise ApiError(400, f"tools: {err}", param="tools") from err
    sg_choice = ToolChoice(function={"name": named}) if named else (choice or "auto")
    offered = [t for t in sglang_tools if named is None or t.function.name == named]
    # A named choice: the grammar admits that tool only (SGLang 0.5.23's admits any of the tools
    # for parsers such as qwen25; its template, like this one, renders the named tool alone).
    parser = FunctionCallParser(offered, parser_name, tokenizer)
    constraint = parser.get_structure_constraint(sg_choice, parallel_tool_calls=req.parallel_tool_calls)
    if constraint is None and sg_choice != "auto" and not parser.detector.parses_required_natively():
        schema = get_json_schema_constraint(offered, sg_choice, parallel_tool_calls=req.parallel_tool_calls)
        constraint = ("json_schema", schema)
    template = [t.model_dump() for t in offered]
    single = req.parallel_tool_calls is False
    return ToolPlan(
        sglang_tools, template, sg_choice, parser_name, tokenizer, _as_parameter(constraint), single
    )


def _checked(tools: list[dict[str, Any]]) -> list[p.ToolDef]:
    out = []
    for i, tool in enumerate(tools):
        try:
            out.append(msgspec.convert(tool, p.ToolDef))
        except msgspec.ValidationError as err:
            raise ApiError(400, f"tools[{i}]: {err}", param=f"tools[{i}]") from err
    return out


def _as_parameter(constraint: Any) -> tuple[str, str] | None:
    """SGLang's constraint object as the sampling parameter's JSON text (as its own mapping does)."""
    if constraint is None:
        return None
    kind, value = constraint
    if kind == "structural_tag":
        return kind, json.dumps(value.model_dump(by_alias=True))
    if kind == "json_schema":
        return kind, value if isinstance(value, str) else json.dumps(value)
    raise ApiError(
        400, f"tools: the {kind!r} constraint of this tool_call_parser is not supported", param="tools"
    )


def _whole(index: int, name: str, arguments: str) -> a.AnswerToolCall:
    """A call (or a streamed call's first delta) with a fresh id, as SGLang names them."""
    return a.AnswerToolCall(
        index, a.AnswerFunction(arguments, name), f"call_{uuid.uuid4().hex[:24]}", "function"
    )


def parse_answer(tools: ToolPlan, text: str) -> tuple[str, list[a.AnswerToolCall]]:
    """(content, tool calls) of a whole answer, as SGLang's OpenAI layer splits it; with
    parallel_tool_calls false, the first call only (the grammar holds required/named choices to
    one; under `auto` the model may write more)."""
    content, calls = _parse_answer(tools, text)
    return content, calls[:1] if tools.single_call else calls


def _parse_answer(tools: ToolPlan, text: str) -> tuple[str, list[a.AnswerToolCall]]:
    parser = tools.parser()
    if tools.native(parser):
        if not parser.has_tool_call(text):
            return text, []
        try:
            content, items = parser.parse_non_stream(text)
        except Exception:  # noqa: BLE001 (a malformed call stays text, as in SGLang)
            return text, []
        calls = [_whole(i, c.name, c.parameters) for i, c in enumerate(items)]
        return content, calls
    try:  # tool_choice required/named under a JSON-array grammar
        data = json.loads(text)
    except ValueError:
        return text, []
    data = [data] if isinstance(data, dict) else data
    if not isinstance(data, list) or not all(isinstance(c, dict) and "name" in c for c in data):
        return text, []
    calls = [
        _whole(i, c["name"], json.dumps(c.get("parameters", {}), ensure_ascii=False))
        for i, c in enumerate(data)
    ]
    return "", calls


@dataclass
class ToolStream:
    """One choice's streamed answer, split into content and tool-call deltas as tokens come."""

    tools: ToolPlan
    parser: Any = None
    json_array: bool = False
    called: bool = False
    sent_args: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.parser = self.tools.parser()
        if not self.tools.native(self.parser):
            from sglang.srt.function_call.json_array_parser import JsonArrayParser

            self.parser, self.json_array = JsonArrayParser(), True

    def feed(self, delta: str) -> tuple[str, list[a.AnswerToolCall]]:
        """Content and call deltas for one token's text (the parser needs the pieces as they
        come: text merged with the start of a call in one piece is lost)."""
        if self.json_array:
            result = self.parser.parse_streaming_increment(delta, self.tools.sglang_tools)
            return result.normal_text or "", self._deltas(result.calls)
        text, items = self.parser.parse_stream_chunk(delta)
        return text or "", self._deltas(items)

    def end(self) -> tuple[str, list[a.AnswerToolCall]]:
        """What the parser held back, and any arguments not yet sent."""
        if self.json_array:
            result = self.parser.finish(self.tools.sglang_tools)
            text, calls = result.normal_text or "", self._deltas(result.calls)
        else:
            text, items = self.parser.parse_stream_end()
            text, calls = text or "", self._deltas(items)
        return text, calls + self._unsent()

    def _deltas(self, items: list[Any]) -> list[a.AnswerToolCall]:
        out = []
        for item in items:
            if self.tools.single_call and item.tool_index > 0:
                continue
            self.called = True
            args = item.parameters or ""
            self.sent_args[item.tool_index] = self.sent_args.get(item.tool_index, "") + args
            if item.name:
                out.append(_whole(item.tool_index, item.name, args))
            else:
                out.append(a.AnswerToolCall(item.tool_index, a.AnswerFunction(args)))
        return out

    def _unsent(self) -> list[a.AnswerToolCall]:
        """The end of the last call's arguments, when the parser saw them whole but sent a prefix
        (SGLang's `_check_for_unstreamed_tool_args`)."""
        detector = getattr(self.parser, "detector", self.parser)
        calls = getattr(detector, "prev_tool_call_arr", None) or []
        if not calls:
            return []
        index = len(calls) - 1
        if self.tools.single_call and index > 0:
            return []
        expected = calls[index].get("arguments", {})
        expected = expected if isinstance(expected, str) else json.dumps(expected, ensure_ascii=False)
        sent = self.sent_args.get(index, "")
        if not expected.startswith(sent) or expected == sent:
            return []
        self.sent_args[index] = expected
        return [a.AnswerToolCall(index, a.AnswerFunction(expected[len(sent) :]))]
