"""Routing policies: pure functions over a snapshot of worker state, testable without servers.

Prefill (per task): prefix-cache-aware choice (or a client's session, by rendezvous hashing),
giving way to the least-loaded worker when the preferred one is overloaded. Decode (one pool for
every task): least_load, power_of_two or round_robin over a token-weighted load signal.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import msgspec


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


class CacheAwareConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a prefix holder keeps a request, and when the load decides (prefill loads are the
    prompt tokens each server has in its prefill queue).

    A match is judged in absolute tokens against the other workers, never as a share of the
    prompt: in PD a prefill server's radix cache holds a conversation's previous *prompts* only
    (the decode server wrote the answers), so on early turns with long answers the cacheable part
    is often under half of the prompt, and a share rule sends exactly those turns elsewhere."""

    min_match_tokens: int = 16  # a conversation's holder has this many more cached tokens than the least
    min_prefix_tokens: int = 256  # a shared prefix (system prompt) is followed from this length on
    balance_abs: float = 2048.0  # the preferred worker is overloaded when its load exceeds the
    balance_rel: float = 1.5  # least loaded one's by balance_abs tokens and by balance_rel times


DEFAULT_BALANCE = CacheAwareConfig()


def overloaded(load: float, least: float, config: CacheAwareConfig) -> bool:
    return load - least > config.balance_abs and load > config.balance_rel * least


def cache_aware(
    matched: Sequence[int],
    loads: Sequence[float],
    config: CacheAwareConfig = DEFAULT_BALANCE,
    healthy: Sequence[bool] | None = None,
    sticky: int | None = None,
    continuing: Sequence[bool] | None = None,
    sizes: Sequence[int] | None = None,
) -> int:
    """Prefill choice: the worker whose cache holds the longest prefix of this prompt, if that
    match is the conversation's own (`continuing`: it ends where a prompt recorded there ended)
    and beats the others by min_match_tokens, or is a shared prefix of min_prefix_tokens or more
    beyond the others; else the client's session worker (`sticky`, from rendezvous hashing of
    its session key), if any; else the least loaded. A preferred worker that is overloaded
    against the least loaded one gives way to it. Without the continuation rule, a short system
    prompt cached on one worker would draw every new conversation there. Among equally loaded
    workers the one holding the fewest cached prefixes (`sizes`) takes a new conversation."""
    pool = _candidates(len(loads), healthy)
    least = min(pool, key=lambda i: (loads[i], sizes[i] if sizes else 0, i))
    best = max(pool, key=lambda i: (matched[i], -loads[i], -i))
    gain = matched[best] - min(matched[i] for i in pool)
    own = continuing is None or continuing[best]
    if (own and gain >= config.min_match_tokens) or gain >= config.min_prefix_tokens:
        preferred = best
    elif sticky is not None and sticky in pool:
        preferred = sticky
    else:
        return least
    return least if overloaded(loads[preferred], loads[least], config) else preferred


def rendezvous(key: str, workers: Sequence[str], healthy: Sequence[bool] | None = None) -> int:
    """The healthy worker with the highest hash of (key, worker): stable for a key, and when a
    worker leaves only its keys move (highest-random-weight hashing). Stable across processes
    (blake2b, not Python's salted hash), so several gateways agree."""
    pool = _candidates(len(workers), healthy)
    return max(pool, key=lambda i: hashlib.blake2b(f"{key}\0{workers[i]}".encode(), digest_size=8).digest())
