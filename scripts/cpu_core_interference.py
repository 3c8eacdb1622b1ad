"""Does work on one core slow work on another? A prefill-shaped matmul pinned to core 0, alone and
beside a decode-shaped loop (a gemv streaming weights out of cache) or a compute loop (the same
matmul) pinned to core 1; prints seconds per 100 matmuls on core 0.

    python scripts/cpu_core_interference.py
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import torch

HIDDEN, FFN, TOKENS = 576, 1536, 64  # SmolLM2-135M's widths, a 64-token prefill


def prefill_like(rounds: int = 8) -> float:
    os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)
    a, w = torch.randn(TOKENS, HIDDEN), torch.randn(HIDDEN, FFN)
    for _ in range(3):
        a @ w
    start = time.perf_counter()
    for _ in range(rounds * 100):
        a @ w
    return (time.perf_counter() - start) / rounds


def neighbour(kind: str, stop: mp.synchronize.Event) -> None:
    os.sched_setaffinity(0, {1})
    torch.set_num_threads(1)
    if kind == "gemv":
        weights = [torch.randn(FFN, HIDDEN) for _ in range(200)]  # ~700 MB of float32
        x = torch.randn(HIDDEN)
        while not stop.is_set():
            for w in weights:
                w @ x
    else:
        a, w = torch.randn(TOKENS, HIDDEN), torch.randn(HIDDEN, FFN)
        while not stop.is_set():
            a @ w


def main() -> None:
    print(f"alone: {prefill_like():.3f} s")
    for kind in ("gemv", "matmul"):
        stop = mp.Event()
        other = mp.Process(target=neighbour, args=(kind, stop))
        other.start()
        time.sleep(3)  # the neighbour's weights allocated and its loop running
        print(f"beside a {kind} on core 1: {prefill_like():.3f} s")
        stop.set()
        other.join()
    print(f"alone: {prefill_like():.3f} s")


if __name__ == "__main__":
    main()
