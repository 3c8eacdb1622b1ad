"""The three benchmarks as tasks (sun_sglang/tasks: gsm8k, humaneval, bfcl): their data, their
scorers (a known-right and a known-wrong answer each, and every reference answer right), the
network-less code sandbox, and the tools prompt built as the gateway builds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sun_sglang import tasks
from sun_sglang.eval import answer_budget
from sun_sglang.tasks import benchmarks, bfcl, code_exec, gsm8k, humaneval, scoring
from tests.test_gateway import gateway, run


def test_gsm8k_scores_the_final_number_and_leaves_out_the_templates_sources() -> None:
    train, test = benchmarks.load("gsm8k")
    assert len(train) == 2000 and len(test) == 1319 - 100
    excluded = json.loads((tasks.DATA / "gsm8k_excluded.json").read_text())
    assert len({m["test_index"] for m in excluded}) == 100
    assert all(m["similarity"] >= 0.4 and m["similarity"] > m["next_best"] + 0.05 for m in excluded)
    left = {ex.messages[0][1].split("\n")[0] for ex in test}
    rows = gsm8k.test_rows()
    assert not any(rows[m["test_index"]]["question"] in left for m in excluded)
    janet = next(ex for ex in test if ex.messages[0][1].startswith("Janet’s ducks"))
    assert janet.reference == "18" and "<<" not in janet.answer
    assert (
        scoring.correct([janet.answer, "She makes $18.\n#### 18", "so 9 * 2 = 18"], [janet] * 3) == [True] * 3
    )
    assert scoring.correct(["#### 19", "The answer is 9.", "no number"], [janet] * 3) == [False] * 3
    assert gsm8k.final_number("#### 1,000.") == "1000" and gsm8k.final_number("\\boxed{-3.5}") == "-3.5"
    assert all(scoring.correct([ex.answer for ex in train[:200]], train[:200]))
    assert all(scoring.correct([ex.answer for ex in test], test))
    _, sample = tasks.train_test("gsm8k", seed=1, n_test=50)
    assert len(sample) == 50 and sample != tasks.train_test("gsm8k", seed=2, n_test=50)[1]


def test_humaneval_runs_answers_in_a_sandbox() -> None:
    train, problems = benchmarks.load("humaneval")
    assert len(problems) == 164 and all(ex.scorer == "execution" for ex in problems)
    assert all(scoring.correct([ex.answer for ex in problems], problems))  # every canonical solution
    assert len(train) == 281 and all(scoring.correct([ex.answer for ex in train[:60]], train[:60]))
    names = {json.loads(ex.reference)["entry_point"] for ex in problems}
    assert not names & {json.loads(ex.reference)["entry_point"] for ex in train}  # no HumanEval problem
    assert not any(scoring.correct(["    return None\n"] * 60, train[:60]))  # the tests test something
    first = problems[0]
    stub = json.loads(first.reference)["prompt"]
    wrong = [
        "```python\n" + stub + "    return False\n```",  # a whole function, wrong
        "    return True\n",  # a body completion, wrong
        "```python\n" + stub + "    while True:\n        pass\n```",  # never ends: timed out
        "I cannot help with that.",
    ]
    assert scoring.correct(wrong, [first] * len(wrong)) == [False] * len(wrong)
    body = json.loads(first.reference)
    solution = first.answer.removeprefix("```python\n" + stub).removesuffix("\n```")
    assert scoring.correct([solution + "\n"], [first]) == [True]  # the body alone, completing the prompt
    assert humaneval.program(first.answer, body).startswith("\n" + stub)


def test_the_code_sandbox_has_no_network() -> None:
    """A test that passes only where the code sees no interface but loopback."""
    problem = {
        "task_id": "sandbox/0",
        "prompt": "import socket\n\n\ndef interfaces():\n",
        "entry_point": "interfaces",
        "test": "def check(candidate):\n    assert candidate() == ['lo'], candidate()\n",
    }
    body = "    return sorted(name for _, name in socket.if_nameindex())\n"
    assert code_exec.run_tests([(problem, body)]) == [True]


def test_bfcl_answers_are_checked_by_bfcl_own_checker() -> None:
    problems = bfcl.problems()
    by_category = {
        c: [ex for ex in problems if json.loads(ex.reference)["category"] == c] for c in bfcl.CATEGORIES
    }
    assert {c: len(v) for c, v in by_category.items()} == {
        "simple_python": 400,
        "multiple": 200,
        "parallel": 200,
        "parallel_multiple": 200,
    }
    assert all(scoring.correct([ex.answer for ex in problems], problems))  # every training answer
    simple = by_category["simple_python"][0]
    # the least answer: "unit" may be left out
    assert simple.answer == bfcl.call_text([("calculate_triangle_area", {"base": 10, "height": 5})])
    wrong = [
        bfcl.call_text([("calculate_triangle_area", {"base": 10, "height": 6})]),  # a wrong value
        bfcl.call_text([("calculate_area", {"base": 10, "height": 5})]),  # a wrong function
        '{"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}',  # no call tags
        simple.answer + "\n" + simple.answer,  # two calls where one is asked
    ]
    assert scoring.correct(wrong, [simple] * len(wrong)) == [False] * len(wrong)
    given = bfcl.call_text([("calculate_triangle_area", {"base": 10, "height": 5, "unit": "units"})])
    assert scoring.correct([given], [simple]) == [True]  # the optional argument given
    parallel = by_category["parallel"][0]
    calls = bfcl.parsed_calls(parallel.answer)
    assert len(calls) > 1
    swapped = bfcl.call_text([(n, a) for call in reversed(calls) for n, a in call.items()])
    assert scoring.correct([swapped], [parallel]) == [True]  # parallel calls in any order
    (tool,) = simple.tool_list()
    params = tool["function"]["parameters"]
    assert params["type"] == "object" and params["properties"]["base"]["type"] == "integer"


def test_tool_prompts_are_the_gateway_s(tiny_qwen2: Path) -> None:
    """The prompt ids training and offline evaluation use for a tools example are those the
    gateway sends to the servers for the same request through the `tools` API."""
    from transformers import AutoTokenizer

    example = next(ex for ex in bfcl.problems() if json.loads(ex.reference)["category"] == "multiple")
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)

    async def body() -> None:
        async with gateway(tiny_qwen2, tool_call_parser="qwen25") as (url, client, _prefill, decode):
            request = {
                "model": "math",
                "messages": example.chat(),
                "tools": example.tool_list(),
                "max_tokens": 4,
            }
            async with client.post(f"{url}/v1/chat/completions", json=request) as resp:
                assert resp.status == 200, await resp.text()
            assert decode.requests[-1]["input_ids"] == tasks.prompt_ids(tokenizer, example)

    run(body())


@pytest.mark.parametrize("name", ["gsm8k", "humaneval", "bfcl"])
def test_free_form_answers_get_room(name: str) -> None:
    from transformers import AutoTokenizer

    from sun_sglang.models import prepare

    tokenizer = AutoTokenizer.from_pretrained(prepare("tiny-qwen2"))
    _, test = tasks.train_test(name, seed=0, n_test=20)
    longest = max(len(tasks.answer_ids(tokenizer, ex)) for ex in test)
    if name == "bfcl":  # a call is exact: its length and the stop token's room, no more
        assert answer_budget(tokenizer, test) == longest + 4
    else:  # a solution's length varies: a quarter more
        assert answer_budget(tokenizer, test) >= longest * 1.25
