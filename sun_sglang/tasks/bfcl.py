"""BFCL (the Berkeley Function Calling Leaderboard, `bfcl-eval==2026.3.23`, Apache-2.0): a user
request and the functions on offer; the answer is the call (or calls) to make, scored by BFCL's
own AST checker against its possible answers.

Categories: simple_python (400), multiple (200: one of 2-4 functions), parallel (200: several
calls of one function), parallel_multiple (200). BFCL has no training set, so its problems are
split by seed (train_test); a training answer is the first possible value of each argument.

Functions go to the prompt as OpenAI tools (the `tools` API's form: BFCL's types mapped as its
own converter does), and the answer is in the model's own call format. That is Qwen2.5's here:
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` per call, what SGLang's `qwen25`
parser reads; an answer without it is no call, as the gateway's `tools` API returns it."""

from __future__ import annotations

import copy
import json
import re
import sys
import types
from pathlib import Path

from sun_sglang.tasks import Example

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")
_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)
# The checker asks the model's settings only whether "." in function names became "_": not here.
_MODEL = "sun-sglang"


def data_dir() -> Path:
    import bfcl_eval

    return Path(bfcl_eval.__file__).parent / "data"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def problems() -> list[Example]:
    out = []
    for category in CATEGORIES:
        answers = {
            r["id"]: r["ground_truth"]
            for r in _rows(data_dir() / "possible_answer" / f"BFCL_v4_{category}.json")
        }
        for row in _rows(data_dir() / f"BFCL_v4_{category}.json"):
            (turn,) = row["question"]  # these categories are single-turn
            messages = tuple((m["role"], m["content"]) for m in turn)
            truth = answers[row["id"]]
            reference = {
                "id": row["id"],
                "category": category,
                "functions": row["function"],
                "possible": truth,
            }
            out.append(
                Example(
                    messages,
                    call_text(
                        [
                            (name, _first_values(args, _required(row["function"], name)))
                            for call in truth
                            for name, args in call.items()
                        ]
                    ),
                    tools=json.dumps(openai_tools(row["function"])),
                    scorer="bfcl_ast",
                    reference=json.dumps(reference),
                )
            )
    return out


def openai_tools(functions: list[dict]) -> list[dict]:
    """BFCL's function docs as OpenAI tools, types mapped by BFCL's GORILLA_TO_OPENAPI (as its
    `convert_to_tool` does for function-calling models; names kept, dots included)."""
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI

    def cast(schema: dict) -> dict:
        kind = schema.get("type", "string")
        schema["type"] = GORILLA_TO_OPENAPI.get(kind, "string")
        if kind == "float":
            schema["format"] = "float"
        for sub in (schema.get("properties") or {}).values():
            cast(sub)
        if isinstance(schema.get("items"), dict):
            cast(schema["items"])
        return schema

    tools = []
    for function in copy.deepcopy(functions):
        params = function.get("parameters") or {"type": "dict", "properties": {}}
        params = cast(params) | {"type": "object"}
        tools.append({"type": "function", "function": {**function, "parameters": params}})
    return tools


def _first_values(args: dict[str, list], required: frozenset[str] = frozenset()) -> dict:
    """A call's arguments, the least the answer needs: each one's first possible value, and an
    argument that may be left out ("" among its values) left out unless it is required."""
    return {
        k: _resolved(next(x for x in v if x != ""))
        for k, v in args.items()
        if any(x != "" for x in v) and ("" not in v or k in required)
    }


def _resolved(value: object) -> object:
    if isinstance(value, dict):
        return _first_values(value)
    if isinstance(value, list):
        return [_resolved(x) if isinstance(x, dict) else x for x in value]
    return value


def _required(functions: list[dict], name: str) -> frozenset[str]:
    for f in functions:
        if f["name"] == name:
            return frozenset((f.get("parameters") or {}).get("required", []))
    return frozenset()


def call_text(calls: list[tuple[str, dict]]) -> str:
    return "\n".join(
        f"<tool_call>\n{json.dumps({'name': n, 'arguments': a}, ensure_ascii=False)}\n</tool_call>"
        for n, a in calls
    )


def parsed_calls(text: str) -> list[dict]:
    """[{name: arguments}] of an answer's calls, BFCL's model-output form; [] when none parse."""
    calls = []
    for block in _CALL.findall(text):
        try:
            call = json.loads(block)
        except ValueError:
            return []
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return []
        args = call.get("arguments", {})
        calls.append({call["name"]: args if isinstance(args, dict) else {}})
    return calls


def correct(prediction: str, reference: dict) -> bool:
    calls = parsed_calls(prediction)
    if not calls:
        return False
    checker, language = _checker()
    result = checker(
        reference["functions"], calls, reference["possible"], language, reference["category"], _MODEL
    )
    return bool(result["valid"])


def _checker():  # noqa: ANN202 (bfcl's checker and its Language enum)
    """BFCL's ast_checker. Its module imports the leaderboard's table of models, which imports
    every API client BFCL supports (not installed): that one module is stood in for by the one
    setting the checker reads."""
    name = "bfcl_eval.constants.model_config"
    if name not in sys.modules:
        stand_in = types.ModuleType(name)
        stand_in.MODEL_CONFIG_MAPPING = {
            _MODEL.replace("_", "/"): types.SimpleNamespace(underscore_to_dot=False)
        }
        sys.modules[name] = stand_in
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    return ast_checker, Language.PYTHON
