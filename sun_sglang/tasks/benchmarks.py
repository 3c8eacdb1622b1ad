"""The three benchmarks of the paper's accuracy table as tasks: gsm8k (math), humaneval (code),
bfcl (tool calling). Each loader gives (training examples, its test set), or (problems, []) when
train_test splits the benchmark's own problems by seed (bfcl)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from sun_sglang.tasks import Example

Loader = Callable[[], tuple[list[Example], list[Example]]]


def _gsm8k() -> tuple[list[Example], list[Example]]:
    from sun_sglang.tasks import gsm8k

    return gsm8k.train(), gsm8k.test()


def _humaneval() -> tuple[list[Example], list[Example]]:
    from sun_sglang.tasks import humaneval

    return humaneval.train(), humaneval.problems()


def _bfcl() -> tuple[list[Example], list[Example]]:
    from sun_sglang.tasks import bfcl

    return bfcl.problems(), []


BENCHMARKS: dict[str, Loader] = {"gsm8k": _gsm8k, "humaneval": _humaneval, "bfcl": _bfcl}


def load(name: str) -> tuple[list[Example], list[Example]]:
    train, test = _loaded(name)
    return list(train), list(test)


@cache
def _loaded(name: str) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    train, test = BENCHMARKS[name]()
    return tuple(train), tuple(test)
