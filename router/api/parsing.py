"""An answer's text split as SGLang's OpenAI layer splits it: the reasoning first (the task's
`reasoning_parser`: `<think>...</think>` and kin), then tool calls in what remains (its
`tool_call_parser`). Whole answers and streams alike; streams are fed each token's text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.api import answers as a
from router.api.tools import ToolPlan, ToolStream, parse_answer


def _reasoning_parser(name: str, stream: bool) -> Any:
    from sglang.srt.parser.reasoning_parser import ReasoningParser

    return ReasoningParser(name, stream_reasoning=stream)


@dataclass(frozen=True)
class Parsing:
    reasoning: str | None = None  # SGLang reasoning parser name
    tools: ToolPlan | None = None

    def whole(self, text: str) -> tuple[str | None, str, list[a.AnswerToolCall]]:
        """(reasoning or None, content, tool calls) of a whole answer."""
        reasoning = None
        if self.reasoning:
            reasoning, text = _reasoning_parser(self.reasoning, stream=False).parse_non_stream(text)
            reasoning, text = reasoning or None, text or ""
        if self.tools is None:
            return reasoning, text, []
        content, calls = parse_answer(self.tools, text)
        return reasoning, content, calls

    def stream(self) -> StreamParsing:
        return StreamParsing(self)


class StreamParsing:
    """One streamed choice: each token's text in, (reasoning, content, call deltas) out."""

    def __init__(self, parsing: Parsing) -> None:
        self.reasoning = _reasoning_parser(parsing.reasoning, stream=True) if parsing.reasoning else None
        self.tools = ToolStream(parsing.tools) if parsing.tools else None

    @property
    def called(self) -> bool:
        return self.tools is not None and self.tools.called

    def feed(self, delta: str) -> tuple[str, str, list[a.AnswerToolCall]]:
        thought = ""
        if self.reasoning is not None:
            thought, delta = self.reasoning.parse_stream_chunk(delta)
            thought, delta = thought or "", delta or ""
        if self.tools is None or not delta:
            return thought, delta, []
        content, calls = self.tools.feed(delta)
        return thought, content, calls

    def end(self) -> tuple[str, str, list[a.AnswerToolCall]]:
        thought, content, calls = "", "", []
        if self.reasoning is not None:
            thought, rest = self.reasoning.parse_stream_end()
            thought, rest = thought or "", rest or ""
            if rest and self.tools is not None:
                content, calls = self.tools.feed(rest)
            else:
                content = rest
        if self.tools is not None:
            more, end_calls = self.tools.end()
            content, calls = content + more, calls + end_calls
        return thought, content, calls
