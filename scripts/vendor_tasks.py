"""Regenerate the vendored task files in sun_sglang/tasks/data/ (maintainers only; CI reads the
vendored files). Needs the bigbench 1.0.0 sdist unpacked and reasoning-gym 0.1.25 importable:

    pip download bigbench==1.0.0 --no-deps --no-binary :all: -d /tmp/bb && tar xzf /tmp/bb/*.tar.gz -C /tmp/bb
    pip install reasoning-gym==0.1.25
    python scripts/vendor_tasks.py /tmp/bb/bigbench-1.0.0/bigbench/benchmark_tasks
"""

from __future__ import annotations

import json
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


if __name__ == "__main__":
    bigbench(Path(sys.argv[1]))
    reasoning_gym()
