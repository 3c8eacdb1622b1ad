"""Worker pools with the load the gateway has placed on each, and the choice of a worker.

Load is token-weighted: each request in flight counts its prompt plus its maximum new tokens,
which is what it can occupy in a server's KV cache. It is reconciled with what the server itself
reports (SGLang's /v1/loads): tokens it holds beyond the gateway's count (another gateway's
requests, leftovers) are added as `external` load. Each worker's state lives in its Slot, so
requests in flight keep their slot while workers are added or removed at run time.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from router import policy
from router.prefix_index import PrefixIndex

log = logging.getLogger("router")
W = TypeVar("W")
DecodePolicy = Literal["least_load", "power_of_two", "round_robin"]
PrefillPolicy = Literal["cache_aware", "least_load", "round_robin"]


def worker_url(worker: object) -> str:
    return worker if isinstance(worker, str) else worker.url  # type: ignore[attr-defined]


@dataclass(eq=False)
class Slot(Generic[W]):
    worker: W
    load: float = 0.0  # tokens the gateway placed here, in flight
    external: float = 0.0  # tokens the server reported beyond `load` at its last poll
    requests: int = 0
    last_ok: float = float("-inf")  # monotonic time one of its requests last made progress
    healthy: bool = True
    draining: bool = False  # takes no new requests; its requests in flight finish

    @property
    def url(self) -> str:
        return worker_url(self.worker)

    @property
    def available(self) -> bool:
        return self.healthy and not self.draining


class Pool(Generic[W]):
    def __init__(self, workers: Sequence[W], seed: int | None = None) -> None:
        self.slots: list[Slot[W]] = [Slot(w) for w in workers]
        self.turn = itertools.count()
        self.rng = random.Random(seed)

    @property
    def workers(self) -> list[W]:
        return [s.worker for s in self.slots]

    def find(self, url: str) -> Slot[W] | None:
        return next((s for s in self.slots if s.url == url), None)

    def add(self, worker: W) -> Slot[W]:
        if self.find(worker_url(worker)):
            raise ValueError(f"worker {worker_url(worker)} is already in the pool")
        slot = Slot(worker)
        self.slots.append(slot)
        return slot

    def remove(self, slot: Slot[W]) -> None:
        self.slots.remove(slot)

    def place(self, slot: Slot[W], tokens: float) -> None:
        slot.load += tokens
        slot.requests += 1

    def release(self, slot: Slot[W], tokens: float) -> None:
        slot.load -= tokens
        slot.requests -= 1

    def set_health(self, slot: Slot[W], healthy: bool) -> bool:
        """Record a health result; True when it changed."""
        changed = slot.healthy != healthy
        slot.healthy = healthy
        return changed

    def report(self, slot: Slot[W], server_tokens: float) -> None:
        """Reconcile with the server's own count of the tokens it holds."""
        slot.external = reconcile(slot.load, server_tokens)

    def _snapshot(self) -> tuple[list[float], list[bool]]:
        return [s.load + s.external for s in self.slots], [s.available for s in self.slots]


def reconcile(placed: float, server_tokens: float) -> float:
    """Load a server carries that the gateway did not place. The gateway's own count is an upper
    bound for its requests (prompt + max new tokens), so a server holding more than that has work
    from elsewhere; a server holding less is simply not done growing its requests."""
    return max(0.0, server_tokens - placed)


class DecodePool(Pool[W]):
    def __init__(self, workers: Sequence[W], how: DecodePolicy = "least_load", seed: int | None = None):
        super().__init__(workers, seed)
        self.how = how

    def choose(self) -> Slot[W]:
        loads, available = self._snapshot()
        if self.how == "power_of_two":
            return self.slots[policy.power_of_two(loads, self.rng, available)]
        if self.how == "round_robin":
            return self.slots[policy.round_robin(next(self.turn), len(loads), available)]
        return self.slots[policy.least_load(loads, available)]


@dataclass(frozen=True, eq=False)
class PrefillChoice(Generic[W]):
    """A prefill worker chosen for one prompt, with what the prefix index expected it to hold."""

    slot: Slot[W]
    keys: list[int]  # the prompt's prefix keys (recorded for this worker)
    predicted: int  # leading prompt tokens the index expected this worker to have cached


class PrefillPool(Pool[W]):
    def __init__(
        self,
        workers: Sequence[W],
        how: PrefillPolicy = "cache_aware",
        seed: int | None = None,
        balance: policy.CacheAwareConfig = policy.DEFAULT_BALANCE,
    ):
        super().__init__(workers, seed)
        self.how = how
        self.balance = balance
        self.prefixes = PrefixIndex()
        for worker in workers:
            self._set_capacity(worker)

    def _set_capacity(self, worker: W) -> None:
        tokens = getattr(worker, "cache_tokens", None)
        if tokens:
            self.prefixes.set_capacity(worker_url(worker), tokens)

    def add(self, worker: W) -> Slot[W]:
        slot = super().add(worker)
        self._set_capacity(worker)
        return slot

    def choose(
        self, prompt: Sequence[int], namespace: str = "", session: str | None = None
    ) -> PrefillChoice[W]:
        """`namespace`: the LoRA adapter on a shared multi-LoRA pool (its own cached prefixes);
        `session`: the client's conversation key, if it gave one (rendezvous-hashed to a worker)."""
        loads, available = self._snapshot()
        urls = [s.url for s in self.slots]
        keys = self.prefixes.keys(prompt, namespace)
        matched = self.prefixes.matched_tokens(keys, urls)
        if self.how == "round_robin":
            i = policy.round_robin(next(self.turn), len(loads), available)
        elif self.how == "least_load":
            i = policy.least_load(loads, available)
        else:
            sticky = policy.rendezvous(session, urls, available) if session else None
            continuing = [self.prefixes.continues(keys, url, n) for url, n in zip(urls, matched)]
            sizes = [self.prefixes.size(url) for url in urls]
            i = policy.cache_aware(matched, loads, self.balance, available, sticky, continuing, sizes)
        self.prefixes.record(urls[i], keys)
        return PrefillChoice(self.slots[i], keys, matched[i])

    def observe(self, choice: PrefillChoice[W], cached_tokens: int) -> None:
        """The server's own count of the prompt tokens it found cached. Nothing cached where the
        index expected two blocks or more (every chat prompt at least shares its template's
        system prefix) means the server lost its cache: restarted between two health probes, or
        flushed. It is forgotten, but for this prompt, which it holds now."""
        block = self.prefixes.block
        if choice.predicted >= 2 * block and cached_tokens < block and choice.slot in self.slots:
            log.warning("prefill worker %s reported an empty cache: prefix record reset", choice.slot.url)
            self.prefixes.forget(choice.slot.url)
            self.prefixes.record(choice.slot.url, choice.keys)

    def set_health(self, slot: Slot[W], healthy: bool) -> bool:
        changed = super().set_health(slot, healthy)
        if changed and not healthy:
            self.prefixes.forget(slot.url)  # it comes back with an empty cache, if at all
        return changed

    def remove(self, slot: Slot[W]) -> None:
        super().remove(slot)
        self.prefixes.forget(slot.url)
