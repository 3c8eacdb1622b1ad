"""Structured outputs: `response_format`, `regex` and `ebnf` as the one grammar both PD legs apply.

Each server compiles its own grammar from the same sampling parameters; the prefill server samples
the first token under it and the decode server's fresh grammar accepts that token before going on
(SGLang's `process_prebuilt`), so one body to both legs is the whole hand-off. A grammar that does
not compile is a 400 here, naming the field, before any server is asked: on a server it would abort
the request on one leg.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from router.api import protocol as p
from router.errors import ApiError

ANY_OBJECT = '{"type": "object"}'  # json_object, as SGLang maps it
_XGRAMMAR_PREFIX = re.compile(r"^\[[0-9:]+\] \S+: ")  # "[18:24:08] /project/cpp/x.cc:83: "


def output_constraint(req: p.SamplingFields) -> tuple[str, str] | None:
    """(SGLang sampling parameter, grammar) for the request's structured-output field, if any."""
    given: list[tuple[str, str, str]] = []  # (field, parameter, grammar)
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_object":
        given.append(("response_format", "json_schema", ANY_OBJECT))
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise ApiError(
                400, "response_format: json_schema needs its json_schema object", param="response_format"
            )
        schema = fmt.json_schema.schema
        given.append(("response_format", "json_schema", ANY_OBJECT if schema is None else json.dumps(schema)))
    if req.regex is not None:
        given.append(("regex", "regex", req.regex))
    if req.ebnf is not None:
        given.append(("ebnf", "ebnf", req.ebnf))
    if len(given) > 1:
        names = ", ".join(field for field, _, _ in given)
        raise ApiError(400, f"{names}: give at most one output constraint", param=given[1][0])
    if not given:
        return None
    field, parameter, grammar = given[0]
    error = compile_error(parameter, grammar)
    if error:
        raise ApiError(400, f"{field}: the grammar does not compile: {error}", param=field)
    return parameter, grammar


@lru_cache(maxsize=256)
def compile_error(parameter: str, grammar: str) -> str | None:
    """What xgrammar (the servers' grammar backend) says of this grammar; None if it compiles."""
    import xgrammar

    build = {
        "json_schema": xgrammar.Grammar.from_json_schema,
        "regex": xgrammar.Grammar.from_regex,
        "ebnf": xgrammar.Grammar.from_ebnf,
    }[parameter]
    try:
        build(grammar)
    except (RuntimeError, ValueError) as err:
        return _XGRAMMAR_PREFIX.sub("", str(err).strip().splitlines()[-1])[:300]
    return None


def request_constraint(req: p.SamplingFields, tool_constraint: tuple[str, str] | None) -> dict[str, Any]:
    """The sampling parameter of the request's one grammar: its structured output, or the grammar
    of its tool choice; both at once cannot be honoured (a 400, where SGLang would drop one)."""
    output = output_constraint(req)
    if output is not None and tool_constraint is not None:
        raise ApiError(
            400,
            "tool_choice: a required, named or strict tool call cannot be combined with"
            " response_format, regex or ebnf (one grammar per answer)",
            param="tool_choice",
        )
    chosen = output or tool_constraint
    return {chosen[0]: chosen[1]} if chosen else {}
