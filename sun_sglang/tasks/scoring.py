"""Whether each answer is right, by its example's scorer: exact match, GSM8K's final number,
HumanEval's tests run in a sandbox, BFCL's AST checker."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sun_sglang.tasks import Example, exact_match


def correct(predictions: Sequence[str], examples: Sequence[Example]) -> list[bool]:
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    out: list[bool | None] = [None] * len(examples)
    runs = []
    for i, (prediction, ex) in enumerate(zip(predictions, examples)):
        if ex.scorer == "exact":
            out[i] = exact_match(prediction, ex.answer)
        elif ex.scorer == "final_number":
            from sun_sglang.tasks import gsm8k

            out[i] = gsm8k.correct(prediction, ex.reference or "")
        elif ex.scorer == "bfcl_ast":
            from sun_sglang.tasks import bfcl

            out[i] = bfcl.correct(prediction, json.loads(ex.reference or "{}"))
        elif ex.scorer == "execution":
            runs.append(i)
        else:
            raise ValueError(f"unknown scorer {ex.scorer!r}")
    if runs:
        from sun_sglang.tasks import code_exec, humaneval

        problems = [json.loads(examples[i].reference or "{}") for i in runs]
        pairs = [(p, humaneval.program(predictions[i], p)) for i, p in zip(runs, problems)]
        for i, passed in zip(runs, code_exec.run_tests(pairs)):
            out[i] = passed
    return [bool(x) for x in out]
