"""The served path against the offline evaluation, on a sample: the same benchmark examples
answered by a running SUN cluster through its gateway (tools through the OpenAI `tools` API) and
by the SUN reference offline, greedy, in float32 both; each answer compared, and its score.

    python -m sun_sglang.eval.served_check --url http://127.0.0.1:8000 --model tools \
        --prefill qwen2.5-coder-0.5b [--decode D] [--tasks bfcl=8,gsm8k=4,humaneval=4]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from sun_sglang import tasks
from sun_sglang.eval import Result, evaluate_offline, evaluate_served
from sun_sglang.eval.study_benchmarks import N_TEST
from sun_sglang.models import prepare


@dataclass(frozen=True)
class Agreement:
    task: str
    n: int
    same_text: int  # answers identical (tool calls as the model's call text)
    same_score: int  # scored alike
    offline_right: int
    served_right: int

    def line(self) -> str:
        return (
            f"{self.task}: n {self.n}, same answer {self.same_text}, same score {self.same_score},"
            f" right offline {self.offline_right}, served {self.served_right}"
        )


def sample(task: str, n: int, seed: int = 0) -> list[tasks.Example]:
    """The study's draw of the task's test set: its first n."""
    _, test = tasks.train_test(task, seed, max(n, N_TEST.get(task, 0)))
    return test[:n]


def offline(prefill: str, decode: str, test: list[tasks.Example]) -> Result:
    return evaluate_offline(prefill, decode, test, batch_size=8, dtype="float32")


def agreement(task: str, offline: Result, served: Result) -> Agreement:
    pairs = list(zip(offline.predictions, served.predictions))
    return Agreement(
        task,
        len(pairs),
        sum(a == b for a, b in pairs),
        sum(a == b for a, b in zip(offline.correct, served.correct)),
        sum(offline.correct),
        sum(served.correct),
    )


def check(url: str, model: str, prefill: str, decode: str, task: str, n: int, seed: int = 0) -> Agreement:
    test = sample(task, n, seed)
    return agreement(task, offline(prefill, decode, test), evaluate_served(url, model, prefill, test, 4))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.eval.served_check")
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True, help="the task's name at the gateway")
    ap.add_argument("--prefill", required=True, help="the task's prefill module (a name or folder)")
    ap.add_argument("--decode", help="the decode module (default: the prefill module)")
    ap.add_argument("--tasks", default="bfcl=8,gsm8k=4,humaneval=4")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    def path(name: str) -> str:
        return name if "/" in name else str(prepare(name))

    prefill = path(args.prefill)
    decode = path(args.decode) if args.decode else prefill
    rows = []
    for item in args.tasks.split(","):
        task, n = item.split("=")
        rows.append(check(args.url, args.model, prefill, decode, task, int(n), args.seed))
        print(rows[-1].line(), flush=True)
    print(json.dumps([r.__dict__ for r in rows]))


if __name__ == "__main__":
    main()
