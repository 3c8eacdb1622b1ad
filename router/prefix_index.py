"""An approximate record of what each prefill worker's radix cache holds (per task pool).

Prompts are cut into blocks of `block` tokens; block k's key is a hash chained over blocks
0..k, so a key stands for a whole prefix. Only prompts are recorded: in PD the prefill server
caches the prompt it ran, never the answer (the decode server wrote that). Each worker keeps its
most recent keys up to its capacity (LRU, like SGLang's radix-cache eviction), which is its KV
cache size in tokens when the cluster file knows it. Matching a prompt walks its keys from the
start until one is missing. Memory: about 150 bytes a key, at most the sum of the capacities.

Each key also keeps the key that followed it (a radix tree's child, one per key): a match that
ends where a recorded prompt ended is a *continuation* (the next turn of a conversation); one
that ends where recorded prompts went on differently is a prefix that other prompts share (a
system prompt), which any worker can cheaply learn.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

DEFAULT_CAPACITY_TOKENS = 1 << 20  # a GPU prefill server's KV for an 8B model is ~0.5-1M tokens
END, BRANCHED = 0, 1  # a key's child: the recorded prompt ended here / prompts went on differently


def prefix_keys(tokens: Sequence[int], block: int, namespace: str = "") -> list[int]:
    """`namespace` separates prompts whose KV differs: SGLang keys its radix cache by LoRA adapter."""
    keys, key = [], hash(namespace) if namespace else 0
    for start in range(0, len(tokens) - len(tokens) % block, block):
        key = hash((key, tuple(tokens[start : start + block])))
        keys.append(key)
    return keys


class PrefixIndex:
    def __init__(self, block: int = 16, capacity_tokens: int = DEFAULT_CAPACITY_TOKENS) -> None:
        self.block = block
        self.default_capacity = max(1, capacity_tokens // block)
        self.capacity: dict[str, int] = {}  # keys per worker, where its cache size is known
        self.seen: dict[str, OrderedDict[int, int]] = {}  # worker -> key -> child

    def set_capacity(self, worker: str, tokens: int) -> None:
        self.capacity[worker] = max(1, tokens // self.block)

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

    def continues(self, keys: Sequence[int], worker: str, matched: int) -> bool:
        """Whether a match of `matched` tokens ends where a prompt recorded on `worker` ended."""
        n = matched // self.block
        return n > 0 and self.seen.get(worker, {}).get(keys[n - 1]) == END

    def record(self, worker: str, keys: Sequence[int]) -> None:
        seen = self.seen.setdefault(worker, OrderedDict())
        for i, key in enumerate(keys):
            child = keys[i + 1] if i + 1 < len(keys) else END
            old = seen.get(key, END)
            # a prompt that goes on where another ended continues it; two that differ branch
            seen[key] = child if old in (END, child) else old if child == END else BRANCHED
            seen.move_to_end(key)
        capacity = self.capacity.get(worker, self.default_capacity)
        while len(seen) > capacity:
            seen.popitem(last=False)

    def forget(self, worker: str) -> None:
        """A worker that restarted (or left) has an empty cache."""
        self.seen.pop(worker, None)

    def size(self, worker: str | None = None) -> int:
        """Keys held: by one worker, or all together."""
        if worker is not None:
            return len(self.seen.get(worker, ()))
        return sum(len(seen) for seen in self.seen.values())
