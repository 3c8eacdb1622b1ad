"""Worker pools with the load the gateway has placed on each, and the choice of a worker.

Load is token-weighted: each request in flight counts its prompt plus its maximum new tokens,
which is what it can occupy in a server's KV cache.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Generic, Literal, TypeVar

from router import policy
from router.prefix_index import PrefixIndex

W = TypeVar("W")
DecodePolicy = Literal["least_load", "power_of_two", "round_robin"]
PrefillPolicy = Literal["cache_aware", "least_load", "round_robin"]


class Pool(Generic[W]):
    def __init__(self, workers: Sequence[W], seed: int | None = None) -> None:
        self.workers = list(workers)
        self.load = [0.0] * len(self.workers)
        self.requests = [0] * len(self.workers)
        self.healthy = [True] * len(self.workers)
        self.turn = itertools.count()
        self.rng = random.Random(seed)

    def place(self, i: int, tokens: float) -> None:
        self.load[i] += tokens
        self.requests[i] += 1

    def release(self, i: int, tokens: float) -> None:
        self.load[i] -= tokens
        self.requests[i] -= 1

    def set_health(self, i: int, healthy: bool) -> bool:
        """Record a health result; True when it changed."""
        changed = self.healthy[i] != healthy
        self.healthy[i] = healthy
        return changed


class DecodePool(Pool[W]):
    def __init__(self, workers: Sequence[W], how: DecodePolicy = "least_load", seed: int | None = None):
        super().__init__(workers, seed)
        self.how = how

    def choose(self) -> int:
        if self.how == "power_of_two":
            return policy.power_of_two(self.load, self.rng, self.healthy)
        if self.how == "round_robin":
            return policy.round_robin(next(self.turn), len(self.workers), self.healthy)
        return policy.least_load(self.load, self.healthy)


class PrefillPool(Pool[W]):
    def __init__(self, workers: Sequence[W], how: PrefillPolicy = "cache_aware", seed: int | None = None):
        super().__init__(workers, seed)
        self.how = how
        self.prefixes = PrefixIndex(len(self.workers))

    def choose(self, prompt: Sequence[int]) -> int:
        if self.how == "round_robin":
            choice = policy.round_robin(next(self.turn), len(self.workers), self.healthy)
        elif self.how == "least_load":
            choice = policy.least_load(self.load, self.healthy)
        else:
            matched = self.prefixes.matched_tokens(prompt)
            choice = policy.cache_aware(matched, len(prompt), self.load, healthy=self.healthy)
        self.prefixes.record(choice, prompt)
        return choice

    def set_health(self, i: int, healthy: bool) -> bool:
        changed = super().set_health(i, healthy)
        if changed and not healthy:
            self.prefixes.forget(i)  # it comes back with an empty cache, if at all
        return changed
