"""Routing policies: pure functions over a snapshot of worker load, testable without servers."""

from __future__ import annotations

from collections.abc import Sequence


def least_loaded(in_flight: Sequence[int], healthy: Sequence[bool] | None = None) -> int:
    """Index of the healthy worker with the fewest requests in flight (lowest index on ties)."""
    candidates = [i for i in range(len(in_flight)) if healthy is None or healthy[i]]
    if not candidates:
        raise LookupError("no healthy worker")
    return min(candidates, key=lambda i: (in_flight[i], i))
