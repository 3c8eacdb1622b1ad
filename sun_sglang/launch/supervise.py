"""Keeps a started cluster serving: a server (or the gateway) that exits or stops answering is
restarted with bounded exponential back-off, and left down after `max_restarts` failures in a
row, without touching the others. The gateway routes around a server while it is down and takes
it back once its /health answers. `step()` is one pass; the launcher calls it every second."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from router import supervision
from sun_sglang.launch.process import ManagedProcess

log = logging.getLogger("sun_sglang.supervise")


class SupervisionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_restarts: int = 5  # failures in a row (exit, hang, failed restart) before it is left down
    backoff_s: float = 2.0  # the wait before the first restart; doubled for each failure in a row
    backoff_max_s: float = 60.0
    stable_s: float = 300.0  # healthy this long: its failures in a row start again from zero
    hang_s: float = 120.0  # /health failing this long with the process alive: killed, restarted
    probe_s: float = 5.0  # how often a running process's /health is probed
    startup_s: float = 300.0  # a restarted process not healthy by then counts as failed


def backoff(failures: int, cfg: SupervisionConfig) -> float:
    return min(cfg.backoff_max_s, cfg.backoff_s * 2 ** max(0, failures - 1))


@dataclass
class Watched:
    proc: ManagedProcess
    status: supervision.Supervised
    since: float = 0.0  # monotonic: when the current state began
    retry_at: float = 0.0
    last_probe: float = 0.0
    unhealthy_since: float | None = None


class Supervisor:
    """`check(name)`: run before each restart; a reason (str) refuses it (e.g. a prefill module
    that no longer matches the decode module), and the process is left down."""

    def __init__(
        self,
        procs: list[ManagedProcess],
        cfg: SupervisionConfig,
        state_file: Path,
        check: Callable[[str], str | None] = lambda _: None,
    ) -> None:
        now = time.monotonic()
        self.cfg, self.state_file, self.check = cfg, state_file, check
        self.watched = [
            Watched(
                p,
                supervision.Supervised(
                    name=p.name, url=(p.health_url or "").removesuffix("/health"), pid=p.pid
                ),
                now,
            )
            for p in procs
        ]
        self._write()

    def step(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        changed = False
        for w in self.watched:
            changed |= self._step_one(w, now)
        if changed:
            self._write()

    def _step_one(self, w: Watched, now: float) -> bool:
        st, cfg = w.status, self.cfg
        if st.state == "failed":
            return False
        if st.state == "waiting":
            if now < w.retry_at:
                return False
            refused = self.check(st.name)
            if refused:
                return self._leave_down(w, now, f"restart refused: {refused}")
            w.proc.start()
            st.restarts, st.pid = st.restarts + 1, w.proc.pid
            return self._set(w, "restarting", now, f"restart {st.restarts}")
        code = w.proc.exit_code()
        if code is not None:
            st.last_exit = code
            tail = w.proc.log_tail(15)
            log.error("%s exited with code %s; last lines of %s:\n%s", st.name, code, w.proc.log_path, tail)
            return self._failed(w, now, f"exited with code {code}")
        if st.state == "restarting":
            if w.proc.healthy():
                return self._set(w, "running", now, "healthy again")
            if now - w.since > cfg.startup_s:
                return self._kill(w, now, f"not healthy {cfg.startup_s:.0f} s after its restart")
            return False
        if st.failures and now - w.since > cfg.stable_s:
            st.failures = 0
        if now - w.last_probe < cfg.probe_s:
            return False
        w.last_probe = now
        if w.proc.healthy():
            w.unhealthy_since = None
            return False
        w.unhealthy_since = w.unhealthy_since if w.unhealthy_since is not None else now
        if now - w.unhealthy_since > cfg.hang_s:
            return self._kill(w, now, f"/health failing for {cfg.hang_s:.0f} s")
        return False

    def _kill(self, w: Watched, now: float, reason: str) -> bool:
        log.error("%s: %s; killing it", w.status.name, reason)
        w.proc.signal(signal.SIGKILL)
        w.proc.stop(grace_s=5.0, signalled=True)
        w.status.last_exit = w.proc.exit_code()
        return self._failed(w, now, reason)

    def _failed(self, w: Watched, now: float, reason: str) -> bool:
        st = w.status
        st.failures += 1
        w.unhealthy_since = None
        if st.failures > self.cfg.max_restarts:
            return self._leave_down(w, now, f"{reason}; {st.failures} failures in a row")
        wait = backoff(st.failures, self.cfg)
        w.retry_at = now + wait
        log.warning("%s: %s; restarting in %.0f s (failure %d in a row)", st.name, reason, wait, st.failures)
        return self._set(w, "waiting", now, reason)

    def _leave_down(self, w: Watched, now: float, reason: str) -> bool:
        log.error("%s is left down: %s", w.status.name, reason)
        return self._set(w, "failed", now, reason)

    def _set(self, w: Watched, state: supervision.State, now: float, event: str) -> bool:
        w.status.state, w.since = state, now
        w.status.reason = None if state == "running" else event
        return True

    def _write(self) -> None:
        supervision.write(self.state_file, [w.status for w in self.watched])
