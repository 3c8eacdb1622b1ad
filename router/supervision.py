"""What the launcher's supervisor says about each process it keeps alive, as the gateway shows it
(/admin/workers, /metrics). The launcher writes one JSON file (atomically, on every change); the
gateway reads it when asked, again only when the file changed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

State = Literal["running", "restarting", "waiting", "failed"]
STATES: tuple[State, ...] = ("running", "restarting", "waiting", "failed")


class Supervised(msgspec.Struct, kw_only=True):  # keywords only: fields are easily shifted
    name: str
    url: str  # what the process serves (a worker's URL; the gateway's own)
    state: State = "running"  # restarting: started again, not healthy yet; waiting: back-off
    pid: int | None = None  # its process (group) now
    restarts: int = 0  # restarts so far
    failures: int = 0  # failures in a row (exits, hangs, failed restarts)
    last_exit: int | None = None  # the exit code (or -signal) of the last exit
    reason: str | None = None  # why it is down: the exit, a hang, a refused check


class SupervisionFile(msgspec.Struct):
    processes: list[Supervised] = []


def write(path: Path, processes: list[Supervised]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(SupervisionFile(processes)))
    os.replace(tmp, path)  # a reader never sees half a file


class Reader:
    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._mtime = -1.0
        self._by_url: dict[str, Supervised] = {}

    def by_url(self) -> dict[str, Supervised]:
        if self.path is None:
            return {}
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                data = msgspec.json.decode(self.path.read_bytes(), type=SupervisionFile)
                self._by_url, self._mtime = {p.url: p for p in data.processes}, mtime
        except (OSError, msgspec.DecodeError):
            pass  # not written yet, or being replaced: the last good view
        return self._by_url
