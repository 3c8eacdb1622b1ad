"""Routing policies: pure functions over a snapshot of worker state, testable without servers.

Prefill (per task): prefix-cache-aware choice with a fall-back to least-loaded when the pool is
imbalanced. Decode (one pool for every task): least_load, power_of_two or round_robin over a
token-weighted load signal.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


def _candidates(n: int, healthy: Sequence[bool] | None) -> list[int]:
    found = [i for i in range(n) if healthy is None or healthy[i]]
    if not found:
        raise LookupError("no healthy worker")
    return found


def least_load(loads: Sequence[float], healthy: Sequence[bool] | None = None) -> int:
    """The healthy worker with the smallest load (lowest index on ties)."""
    return min(_candidates(len(loads), healthy), key=lambda i: (loads[i], i))


def power_of_two(loads: Sequence[float], rng: random.Random, healthy: Sequence[bool] | None = None) -> int:
    """Two healthy workers drawn at random; the less loaded one."""
    pool = _candidates(len(loads), healthy)
    if len(pool) == 1:
        return pool[0]
    a, b = rng.sample(pool, 2)
    return a if (loads[a], a) <= (loads[b], b) else b


def round_robin(turn: int, n: int, healthy: Sequence[bool] | None = None) -> int:
    """The first healthy worker at or after position `turn` (mod n)."""
    pool = set(_candidates(n, healthy))
    return next(i % n for i in range(turn, turn + n) if i % n in pool)


@dataclass(frozen=True)
class CacheAwareConfig:
    """When to trust the prefix cache and when to balance (the shape of SGLang's router)."""

    min_match_ratio: float = 0.5  # below this share of the prompt cached anywhere: least-loaded
    balance_abs: float = 32.0  # imbalanced when max - min load exceeds this ...
    balance_rel: float = 1.5  # ... and max exceeds rel * min


def cache_aware(
    matched: Sequence[int],
    prompt_len: int,
    loads: Sequence[float],
    config: CacheAwareConfig = CacheAwareConfig(),
    healthy: Sequence[bool] | None = None,
) -> int:
    """Prefill choice: the worker whose cache holds the longest prefix of this prompt, unless the
    pool is imbalanced or no worker holds enough of it; then the least loaded."""
    pool = _candidates(len(loads), healthy)
    low, high = min(loads[i] for i in pool), max(loads[i] for i in pool)
    imbalanced = high - low > config.balance_abs and high > config.balance_rel * low
    best = max(pool, key=lambda i: (matched[i], -loads[i], -i))
    if imbalanced or prompt_len == 0 or matched[best] < config.min_match_ratio * prompt_len:
        return least_load(loads, healthy)
    return best
