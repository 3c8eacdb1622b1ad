"""python -m sun_sglang.eval --task T --prefill P [--decode D] [--served URL --model NAME]

Accuracy (exact match) on the task's held-out split (--seed, --n-test: the split training used).
Configurations: base alone (P = D = base), full fine-tuning (P = D = full), naive composition
(P = full, D = base), SUN (P = SUN prefill module, D = base). --decode defaults to --prefill."""

from __future__ import annotations

import argparse
import json

from sun_sglang import tasks
from sun_sglang.eval import evaluate_offline, evaluate_served
from sun_sglang.models import prepare


def _model(name: str) -> str:
    return name if "/" in name else str(prepare(name))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.eval")
    ap.add_argument("--task", required=True)
    ap.add_argument("--prefill", required=True, help="prefill module: a model name or folder")
    ap.add_argument("--decode", help="decode module (default: the prefill module)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--limit", type=int, help="only the first N test examples")
    ap.add_argument("--served", metavar="URL", help="a gateway to send the requests to instead")
    ap.add_argument("--model", help="the task name at the gateway (with --served)")
    ap.add_argument("--show", type=int, default=0, help="print N predictions")
    args = ap.parse_args(argv)
    _, test = tasks.train_test(args.task, args.seed, args.n_test)
    test = test[: args.limit] if args.limit else test
    prefill = _model(args.prefill)
    if args.served:
        if not args.model:
            ap.error("--served needs --model (the task name at the gateway)")
        result = evaluate_served(args.served, args.model, prefill, test)
    else:
        result = evaluate_offline(prefill, _model(args.decode or args.prefill), test)
    for ex, pred, ok in list(zip(test, result.predictions, result.correct))[: args.show]:
        print(f"{'ok ' if ok else 'BAD'} {pred!r} (want {ex.answer!r})")
    print(json.dumps({"task": args.task, "n": result.n, "accuracy": round(result.accuracy, 4)}))


if __name__ == "__main__":
    main()
