"""A CPU core shared by several servers (the CPU cluster pins many to one core): processor
sharing, so while n of them have work, each progresses at 1/n speed, or 1/(n * overhead) where
servers lose more than their share to each other (measured: see bench.profile.measure_sharing).
A server whose scheduler polls while idle (SGLang's default, without --sleep-on-idle) holds its
share even with no work: `tenants` is then the number of servers pinned to the core."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)
class SharedCore:
    at: Callable[..., None]  # the simulator's scheduler: at(when, action, *args)
    clock: Callable[[], float]  # the simulator's current time
    work: dict = field(default_factory=dict)  # key -> [seconds of work left, then]
    last: float = 0.0  # when `work` was last advanced
    version: int = 0  # finish events of earlier versions are stale
    overhead: float = 1.0  # slowdown beyond 1/n while two or more share the core
    tenants: int = 1  # servers that take their share whether busy or not (1: only busy ones do)

    def _slowdown(self) -> float:
        n = max(len(self.work), self.tenants)
        return n * self.overhead if n > 1 else 1.0

    def start(self, key: object, seconds: float, then: Callable[[], None]) -> None:
        self._advance()
        self.work[key] = [seconds, then]
        self._reschedule()

    def _finish(self, key: object, version: int) -> None:
        if version != self.version:
            return
        self._advance()
        _, then = self.work.pop(key)
        self._reschedule()
        then()

    def _advance(self) -> None:
        now = self.clock()
        if self.work:
            share = (now - self.last) / self._slowdown()
            for item in self.work.values():
                item[0] -= share
        self.last = now

    def _reschedule(self) -> None:
        self.version += 1
        now, slowdown = self.clock(), self._slowdown()
        for key, (left, _) in self.work.items():
            self.at(now + max(0.0, left) * slowdown, self._finish, key, self.version)
