"""Drive an OpenAI-compatible endpoint with a planned workload: every request streamed, its
timings recorded (TTFT, the gap before each chunk, end-to-end latency, tokens, error)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass, field

import aiohttp
from tqdm import tqdm

from sun_sglang.bench.workload import (
    PlannedConversation,
    PlannedRequest,
    WorkloadConfig,
    plan,
    plan_conversations,
)


@dataclass
class Record:
    index: int
    task: str
    sent_s: float  # after the run's start
    ttft_s: float | None = None
    latency_s: float | None = None
    output_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    itl_s: list[float] = field(default_factory=list)  # gaps between content chunks
    error: str | None = None
    conversation: int | None = None  # multi-turn workloads: which conversation, which turn
    turn: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.latency_s is not None

    @property
    def tpot_s(self) -> float | None:
        if not self.ok or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.latency_s - self.ttft_s) / (self.output_tokens - 1)  # type: ignore[operator]


def get_text(url: str) -> str:
    """A plain GET (the endpoint's /v1/models and /metrics), outside any event loop."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


async def send(
    session: aiohttp.ClientSession,
    url: str,
    req: PlannedRequest,
    ignore_eos: bool,
    started: float,
    history: list[dict[str, str]] | None = None,
) -> Record:
    """One streamed chat request. With `history` (a conversation), the request carries the
    history and this turn's message, and both this message and the answer are appended to it."""
    messages = (history or []) + req.messages
    body = {
        "model": req.task,
        "messages": messages,
        "max_tokens": req.max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": ignore_eos,
    }
    t0 = time.perf_counter()
    rec = Record(req.index, req.task, t0 - started, conversation=req.conversation, turn=req.turn)
    last, answer = t0, []
    try:
        async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
            if resp.status != 200:
                rec.error = f"HTTP {resp.status}: {(await resp.text())[:300]}"
                return rec
            async for line in resp.content:
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    break
                chunk = json.loads(payload)
                if "error" in chunk:
                    rec.error = f"stream error: {chunk['error'].get('message')}"
                    return rec
                now = time.perf_counter()
                pieces = [c.get("delta", {}).get("content") for c in chunk.get("choices", [])]
                answer += [p for p in pieces if p]
                if any(pieces):
                    if rec.ttft_s is None:
                        rec.ttft_s = now - t0
                    else:
                        rec.itl_s.append(now - last)
                    last = now
                usage = chunk.get("usage")
                if usage:
                    rec.output_tokens = usage["completion_tokens"]
                    rec.prompt_tokens = usage["prompt_tokens"]
                    details = usage.get("prompt_tokens_details") or {}
                    rec.cached_tokens = details.get("cached_tokens") or 0
        rec.latency_s = time.perf_counter() - t0
    except (TimeoutError, aiohttp.ClientError, ValueError) as err:
        rec.error = f"{type(err).__name__}: {err}"
    if history is not None:
        history += [*req.messages, {"role": "assistant", "content": "".join(answer)}]
    return rec


async def run(
    cfg: WorkloadConfig, url: str, api_key: str = "none", progress: bool = True, timeout_s: float = 600
) -> tuple[list[Record], float]:
    """All planned requests (or those issued before `duration_s`); (records, wall seconds)."""
    planned: list = plan_conversations(cfg) if cfg.multi_turn else plan(cfg)
    limit = asyncio.Semaphore(cfg.concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}
    connector = aiohttp.TCPConnector(limit=cfg.concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    total = sum(len(c.turns) for c in planned) if cfg.multi_turn else len(planned)
    bar = tqdm(total=total, disable=not progress, desc="requests")
    records: list[Record] = []
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + cfg.duration_s if cfg.duration_s else None

        async def issue(item: PlannedRequest | PlannedConversation) -> None:
            # one request, or one conversation's turns in order, each with the history so far
            single = isinstance(item, PlannedRequest)
            turns, history = ([item], None) if single else (item.turns, [])
            async with limit:
                for turn in turns:
                    await asyncio.sleep(turn.think_s)
                    rec = await send(session, url.rstrip("/"), turn, cfg.ignore_eos, started, history)
                    records.append(rec)
                    bar.update(1)
                    if not rec.ok:
                        break  # the conversation cannot go on without its answer

        if cfg.arrival == "closed":
            queue = iter(planned)

            async def worker() -> None:
                for req in queue:
                    if deadline and time.perf_counter() > deadline:
                        return
                    await issue(req)

            await asyncio.gather(*(worker() for _ in range(cfg.concurrency)))
        else:
            jobs = []
            for req in planned:
                wait = started + req.at_s - time.perf_counter()
                if deadline and started + req.at_s > deadline:
                    break
                if wait > 0:
                    await asyncio.sleep(wait)
                jobs.append(asyncio.create_task(issue(req)))
            await asyncio.gather(*jobs)
        wall = time.perf_counter() - started
    bar.close()
    return sorted(records, key=lambda r: r.index), wall
