"""The names of SGLang's tool-call and reasoning parsers a task may name, checked at the edge
(config load, admin calls): an unknown one is a ValueError naming the task and SGLang's list.
SGLang's parser modules are imported on the first check (seconds), never per request."""

from __future__ import annotations


def check_tool_parsers(parsers: dict[str, str]) -> None:
    if parsers:
        from sglang.srt.function_call.function_call_parser import FunctionCallParser

        _check("tool_call_parser", parsers, FunctionCallParser.ToolCallParserEnum)


def check_reasoning_parsers(parsers: dict[str, str]) -> None:
    if parsers:
        from sglang.srt.parser.reasoning_parser import ReasoningParser

        _check("reasoning_parser", parsers, ReasoningParser.DetectorMap)


def _check(field: str, parsers: dict[str, str], known: dict) -> None:
    for task, name in parsers.items():
        if name not in known:
            names = ", ".join(sorted(known))
            raise ValueError(f"task {task!r}: unknown {field} {name!r}; SGLang has {names}")
