"""Decode step times from a decode server's own log. Started with `--decode-log-interval 1`, SGLang
logs every decode step: "Decode batch, #running-req: N, ... gen throughput (token/s): T", where T
is that step's N tokens over the time since the previous step's line. So N / T is what one step
took with everything the scheduler did between steps (receiving KV, admitting requests, polling
transfers): what TPOT pays under open-loop load, and what a closed-loop profile does not see."""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from datetime import datetime

from sun_sglang.sim.costs import Profile

STEP_LOG_ARGS = ["--decode-log-interval", "1"]
_STEP = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[^\]]*\] Decode batch.*?#running-req: (\d+),"
    r".*?gen throughput \(token/s\): ([\d.]+)",
    re.MULTILINE,
)


def decode_steps(log_text: str, since: float = 0.0) -> list[tuple[int, float]]:
    """(batch size, seconds) of every decode step logged from the whole second after `since` (a
    time.time(); the log's stamps are local time to the second) on."""
    out, first = [], math.ceil(since)
    for stamp, n, t in _STEP.findall(log_text):
        logged = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp()
        if logged >= first and float(t) > 0:
            out.append((int(n), int(n) / float(t)))
    return out


def step_profile(
    steps: list[tuple[int, float]], prefill: Profile, min_steps: int = 5, source: str = ""
) -> Profile:
    """A simulator profile whose decode step by batch size is the median of the logged steps (batch
    sizes seen at least `min_steps` times; the median drops the first step after an idle spell,
    whose line also counts the idle time), and whose prefill costs are `prefill`'s."""
    by_batch: dict[int, list[float]] = defaultdict(list)
    for batch, seconds in steps:
        by_batch[batch].append(seconds)
    batches = sorted(b for b, s in by_batch.items() if len(s) >= min_steps)
    if not batches:
        raise ValueError(
            f"no batch size logged {min_steps} times: was the server started with {STEP_LOG_ARGS}?"
        )
    return Profile(
        decode_batches=[float(b) for b in batches],
        decode_seconds=[statistics.median(by_batch[b]) for b in batches],
        prefill_lens=prefill.prefill_lens,
        prefill_seconds=prefill.prefill_seconds,
        source=source,
    )
