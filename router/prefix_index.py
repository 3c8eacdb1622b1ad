"""An approximate record of which prompt prefixes each worker has seen (per task pool).

Prompts are cut into blocks of `block` tokens; block k's key is a hash chained over blocks
0..k, so a key stands for a whole prefix. Each worker keeps its most recent `capacity` keys (LRU),
roughly what its radix cache still holds. Matching a prompt walks its keys from the start until
one is missing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


def prefix_keys(tokens: Sequence[int], block: int, namespace: str = "") -> list[int]:
    """`namespace` separates prompts whose KV differs: SGLang keys its radix cache by LoRA adapter."""
    keys, key = [], hash(namespace) if namespace else 0
    for start in range(0, len(tokens) - len(tokens) % block, block):
        key = hash((key, tuple(tokens[start : start + block])))
        keys.append(key)
    return keys


class PrefixIndex:
    def __init__(self, block: int = 16, capacity: int = 65536) -> None:
        self.block = block
        self.capacity = capacity
        self.seen: dict[str, OrderedDict[int, None]] = {}

    def keys(self, tokens: Sequence[int], namespace: str = "") -> list[int]:
        """A prompt's prefix keys: computed once per request, used to match and to record."""
        return prefix_keys(tokens, self.block, namespace)

    def matched_tokens(self, keys: Sequence[int], workers: Sequence[str]) -> list[int]:
        """Per worker (in the order given): how many leading tokens of the prompt with these
        keys it has seen, in whole blocks."""
        out = []
        for worker in workers:
            seen = self.seen.get(worker, {})
            n = 0
            while n < len(keys) and keys[n] in seen:
                n += 1
            out.append(n * self.block)
        return out

    def record(self, worker: str, keys: Sequence[int]) -> None:
        seen = self.seen.setdefault(worker, OrderedDict())
        for key in keys:
            seen[key] = None
            seen.move_to_end(key)
        while len(seen) > self.capacity:
            seen.popitem(last=False)

    def forget(self, worker: str) -> None:
        """A worker that restarted (or left) has an empty cache."""
        self.seen.pop(worker, None)
