"""Where a run's figures go, from rank 0: `jsonl` (OUT/logs/metrics.jsonl, one line per step) and
`tensorboard` (event files in OUT/logs: `tensorboard --logdir OUT/logs`), as `report_to` names them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGETS = ("jsonl", "tensorboard")


class Reporter:
    def __init__(self, targets: tuple[str, ...], folder: Path, enabled: bool = True) -> None:
        unknown = sorted(set(targets) - set(TARGETS) - {"none"})
        if unknown:
            raise ValueError(f"report_to: unknown {unknown}; known: {', '.join(TARGETS)}, none")
        self.targets = () if not enabled or "none" in targets else targets
        self.jsonl = self.board = None
        if self.targets:
            folder.mkdir(parents=True, exist_ok=True)
        if "jsonl" in self.targets:
            self.jsonl = open(folder / "metrics.jsonl", "a")  # noqa: SIM115 (closed in close())
        if "tensorboard" in self.targets:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ValueError(
                    "report_to tensorboard needs the tensorboard package (pip install tensorboard)"
                ) from err
            self.board = SummaryWriter(str(folder))

    def step(self, step: int, **scalars: Any) -> None:
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
            self.jsonl.flush()
        if self.board is not None:
            for name, value in scalars.items():
                self.board.add_scalar(f"train/{name}", value, step)

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
        if self.board is not None:
            self.board.close()


def vm_gib(field: str) -> float:
    """VmHWM (peak) or VmRSS of this process, GiB. Not ru_maxrss: Linux carries that across
    fork and exec, so a child would report its parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux: clear_refs 5), so that a later peak is the
    training's own, not the loading's (every rank loads the whole checkpoint before sharding)."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:  # not Linux, or not permitted: the peak then includes loading
        pass
