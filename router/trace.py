"""One record per API request: its id, where it ran, what it cost; logged as one JSON line. And
the request as the gateway runs it (a Job: its task, prompt ids and trace).

The request id is the client's `X-Request-Id` when it is a sane token, else a random one; it is
echoed in the response and starts the `rid` that both SGLang servers log for the request."""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

import msgspec

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Trace(msgspec.Struct, omit_defaults=True):
    request_id: str
    path: str
    ts: float = msgspec.field(default_factory=time.time)  # arrival, unix seconds
    status: int = 0
    task: str | None = None
    stream: bool = False
    prefill: str | None = None
    decode: str | None = None
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    error: str | None = None

    def sglang_rid(self) -> str:
        """A fresh SGLang rid per attempt (a client may reuse its request ids)."""
        self.attempts += 1
        return f"{self.request_id}.{random.getrandbits(40):010x}"

    def record_meta(self, meta: dict) -> None:
        self.prompt_tokens = meta.get("prompt_tokens", 0)
        self.completion_tokens = meta.get("completion_tokens", 0)
        self.cached_tokens = meta.get("cached_tokens", 0)


def request_id(header: str | None) -> str:
    if header and _REQUEST_ID.match(header):
        return header
    return f"{random.getrandbits(128):032x}"


class AccessLog:
    """JSON lines, buffered and written every `flush_s` (one write per interval, not per
    request: a write per request cost ~10% of the gateway's throughput). "-" is stderr."""

    def __init__(self, target: str, flush_s: float) -> None:
        self.stream: IO[bytes] = sys.stderr.buffer if target == "-" else open(target, "ab")  # noqa: SIM115
        self.flush_s = flush_s
        self.lines: list[bytes] = []
        self.encoder = msgspec.json.Encoder()
        self._flusher: asyncio.Task | None = None

    def write(self, trace: Trace, status: int) -> None:
        trace.status = status
        trace.latency_ms = round((time.time() - trace.ts) * 1e3, 3)
        self.lines.append(self.encoder.encode(trace) + b"\n")

    def flush(self) -> None:
        if self.lines:
            self.stream.write(b"".join(self.lines))
            self.stream.flush()
            self.lines.clear()

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            self.flush()

    async def close(self) -> None:
        if self._flusher:
            self._flusher.cancel()
        self.flush()
        if self.stream is not sys.stderr.buffer:
            self.stream.close()


@dataclass(frozen=True)
class Job:
    """One API request as the gateway runs it: its task, prompt ids and trace, and the request
    fields besides the sampling parameters (logprobs); each choice adds its own parameters."""

    task: str
    input_ids: list[int]
    trace: Trace
    extra: dict[str, Any] | None = None
    session: str | None = None  # the client's conversation key (prefill affinity), if it gave one
