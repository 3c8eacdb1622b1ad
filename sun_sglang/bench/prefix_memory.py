"""The prefill pool's prefix index at scale: memory and routing time after many conversations.

    python -m sun_sglang.bench.prefix_memory --conversations 100000 --workers 2 --turns 3

Routes seeded synthetic conversations (a shared system prompt, then per turn a new message and
an answer the prefill server never caches) through a `PrefillPool`, as the gateway does, and
prints the keys held, the traced memory (tracemalloc: the index's dicts and keys) and the
routing time per request, for each per-worker cache size given. The index is bounded by the
sum of its workers' capacities, whatever the number of conversations.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import tracemalloc

from router.config import PrefillWorker
from router.pools import PrefillPool


def measure(conversations: int, workers: int, turns: int, cache_tokens: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    system = [rng.randrange(50000) for _ in range(24)]
    urls = [PrefillWorker(f"http://10.0.0.{i}:30000", 31000, cache_tokens) for i in range(workers)]
    tracemalloc.start()
    pool = PrefillPool(urls)
    routed, elapsed = 0, 0.0
    for _ in range(conversations):
        prompt = system + [rng.randrange(50000) for _ in range(rng.randint(12, 40))]
        for _ in range(turns):
            t0 = time.perf_counter()
            choice = pool.choose(prompt)
            pool.place(choice.slot, len(prompt))
            pool.release(choice.slot, len(prompt))
            elapsed += time.perf_counter() - t0
            routed += 1
            answer = [rng.randrange(50000) for _ in range(rng.randint(16, 64))]
            prompt = prompt + answer + [rng.randrange(50000) for _ in range(rng.randint(8, 32))]
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    keys = pool.prefixes.size()
    return {
        "conversations": conversations,
        "workers": workers,
        "turns": turns,
        "cache_tokens_per_worker": cache_tokens,
        "keys_held": keys,
        "key_bound": workers * (cache_tokens // pool.prefixes.block),
        "traced_mib": round(traced / 2**20, 1),
        "bytes_per_key": round(traced / max(1, keys)),
        "route_us_per_request": round(elapsed / routed * 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.bench.prefix_memory")
    ap.add_argument("--conversations", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--cache-tokens", default="4096,1048576", help="per-worker KV sizes to try")
    args = ap.parse_args()
    for tokens in (int(t) for t in args.cache_tokens.split(",")):
        print(json.dumps(measure(args.conversations, args.workers, args.turns, tokens)))


if __name__ == "__main__":
    main()
