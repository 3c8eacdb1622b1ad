"""The gateway's core: tasks, their tokenizers, the worker pools, and one request's run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from router import health, supervision
from router.config import GatewayConfig
from router.errors import ApiError
from router.metrics import GatewayMetrics
from router.pd import Clients, LegTimeouts, Pair, UpstreamError, generate, generate_stream, pd_body
from router.pools import DecodePool, Pool, PrefillPool
from router.streams import merge
from router.tokenizer import TaskTokenizer, check_lengths
from router.trace import AccessLog, Job
from router.upstream import UpstreamPool

log = logging.getLogger("router")


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.created = int(time.time())
        # one tokenizer per model: adapter tasks on one base (a thousand, on a fleet) share it
        shared = {path: TaskTokenizer(path) for path in {t.model_path for t in config.tasks.values()}}
        self.tokenizers = {name: shared[t.model_path] for name, t in config.tasks.items()}
        # Multi-LoRA prefill pools, each shared by its adapter tasks (one load count per server).
        self.shared_prefill = {
            name: PrefillPool(workers, config.prefill_policy, balance=config.prefill_balance)
            for name, workers in config.prefill_pools.items()
        }
        self.prefill = {
            name: self.shared_prefill[t.pool]
            if t.pool
            else PrefillPool(t.prefill, config.prefill_policy, balance=config.prefill_balance)
            for name, t in config.tasks.items()
        }
        self.adapters = {name: t.adapter for name, t in config.tasks.items() if t.adapter}
        # One shared decode pool (SUN); a task with its own decode servers (conventional) has its own.
        self.shared_decode = DecodePool(config.decode, config.decode_policy)
        self.decode = {
            name: DecodePool(t.decode, config.decode_policy) if t.decode else self.shared_decode
            for name, t in config.tasks.items()
        }
        self.model_paths = {name: t.model_path for name, t in config.tasks.items()}
        self.tool_parsers = {n: t.tool_call_parser for n, t in config.tasks.items() if t.tool_call_parser}
        self.reasoning_parsers = {
            n: t.reasoning_parser for n, t in config.tasks.items() if t.reasoning_parser
        }
        self.metrics = GatewayMetrics(config.metrics_task_histograms)
        self.supervision = supervision.Reader(config.supervision_file)
        self.in_flight = 0
        self.running: Counter[str] = Counter()  # requests in flight per task
        self.access_log: AccessLog | None = None
        self.clients: Clients | None = None
        self._background: list[asyncio.Task] = []

    @property
    def pools(self) -> list[tuple[str, Pool]]:
        """Every pool once: a task's own prefill pool, the multi-LoRA prefill pools, the decode pools."""
        own_prefill = [(f"prefill:{n}", pool) for n, pool in self.prefill.items() if n not in self.adapters]
        shared_prefill = [(f"prefill-pool:{n}", pool) for n, pool in self.shared_prefill.items()]
        own = [(f"decode:{n}", pool) for n, pool in self.decode.items() if pool is not self.shared_decode]
        return [*own_prefill, *shared_prefill, ("decode", self.shared_decode), *own]

    def decode_pools(self) -> list[Pool]:
        return [pool for name, pool in self.pools if name.startswith("decode")]

    @property
    def session(self) -> aiohttp.ClientSession | None:
        return self.clients.session if self.clients else None

    async def startup(self, _app: web.Application) -> None:
        t = self.config.timeouts
        # aiohttp for aborts, health, loads and admin calls; the PD legs have their own client.
        key = self.config.server_api_key
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=t.request_s, connect=t.connect_s),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"Authorization": f"Bearer {key}"} if key else None,
        )
        self.clients = Clients(UpstreamPool(t.connect_s, api_key=key), session)
        if self.config.access_log:
            self.access_log = AccessLog(self.config.access_log, self.config.access_log_flush_s)
            await self.access_log.start()
        c = self.config
        if c.health_interval_s > 0:
            monitor = health.monitor(
                self.session, lambda: self.pools, c.health_interval_s, c.health_timeout_s
            )
            self._background.append(asyncio.create_task(monitor))
        if c.load_interval_s > 0:
            poll = health.poll_loads(self.session, self.decode_pools, c.load_interval_s, c.health_timeout_s)
            self._background.append(asyncio.create_task(poll))

    async def cleanup(self, _app: web.Application) -> None:
        for task in self._background:
            task.cancel()
        if self.clients:
            self.clients.legs.close()
            await self.clients.session.close()
        if self.access_log:
            await self.access_log.close()

    def task(self, model: str) -> str:
        if model not in self.prefill:
            raise ApiError(
                404,
                f"The model '{model}' does not exist; known: {', '.join(sorted(self.prefill))}",
                param="model",
                code="model_not_found",
            )
        return model

    def leg_timeouts(self, params: dict[str, Any]) -> LegTimeouts:
        t = self.config.timeouts
        answer_s = t.answer_s(params.get("max_new_tokens", 128))
        return LegTimeouts(t.first_token_s, t.between_tokens_s, answer_s)

    @asynccontextmanager
    async def pair(self, job: Job, params: dict[str, Any]) -> AsyncIterator[Pair]:
        """Choose a prefill and a decode server for this request and account its load on them
        while it runs (the prefill server's until its leg ends); upstream failures become 502
        ApiErrors. The body of the `async with` records the answer's meta in the trace."""
        task, input_ids, trace = job.task, job.input_ids, job.trace
        new_tokens = params.get("max_new_tokens", 128)
        check_lengths(
            len(input_ids), new_tokens, self.config.max_prompt_tokens, self.tokenizers[task].context_len
        )
        if self.in_flight >= self.config.max_concurrency:
            raise ApiError(429, "too many requests in flight; retry later", kind="rate_limit_error")
        prefill_pool, decode_pool = self.prefill[task], self.decode[task]
        try:
            choice = prefill_pool.choose(input_ids, self.adapters.get(task, ""), job.session)
        except LookupError as err:
            raise ApiError(503, f"no healthy prefill server for task '{task}'", kind="unavailable") from err
        try:
            decode = decode_pool.choose()
        except LookupError as err:
            raise ApiError(503, "no healthy decode server", kind="unavailable") from err
        prefill = choice.slot
        trace.prefill, trace.decode = prefill.url, decode.url
        weight = len(input_ids) + new_tokens
        prefill_pool.place(prefill, len(input_ids))
        decode_pool.place(decode, weight)
        self.in_flight += 1
        self.running[task] += 1
        self.metrics.task_in_flight.labels(task).inc()
        prefill_held = True

        def prefill_done() -> None:  # the prefill leg ended: the server has no more work for it
            nonlocal prefill_held
            if prefill_held:
                prefill_held = False
                prefill_pool.release(prefill, len(input_ids))

        def progressed() -> None:  # passive health: both servers are doing their part
            prefill.last_ok = decode.last_ok = time.monotonic()

        try:
            yield Pair(prefill.worker, decode.worker, progressed, prefill_done)
        except UpstreamError as err:
            if err.unreachable:
                self._mark_unreachable(err.unreachable)
            status = 504 if err.status == 504 else 502 if err.status >= 500 else err.status
            raise ApiError(status, str(err), kind="upstream_error", retry=bool(err.unreachable)) from err
        else:
            progressed()
            prefill_pool.observe(choice, trace.cached_tokens)
        finally:
            prefill_done()
            decode_pool.release(decode, weight)
            self.in_flight -= 1
            self.running[task] -= 1
            self.metrics.task_in_flight.labels(task).dec()

    def _mark_unreachable(self, url: str) -> None:
        """A server that refused a connection leaves its pool now; the health monitor brings it
        back once it answers again."""
        for name, pool in self.pools:
            slot = pool.find(url)
            if slot is not None and pool.set_health(slot, False):
                log.warning("%s worker %s refused a connection: out of the pool", name, url)

    def _leg(self, job: Job, pair: Pair, params: dict[str, Any]) -> tuple[bytes, str, str | None, str | None]:
        """The one body both legs get, its SGLang rid, and the task's adapter (if any) on the
        prefill leg and on the decode leg (multi-LoRA decode servers only)."""
        rid = job.trace.sglang_rid()
        adapter = self.adapters.get(job.task)
        on_decode = adapter if self.config.decode_adapters else None
        return pd_body(pair.prefill, rid, job.input_ids, params, job.extra), rid, adapter, on_decode

    async def run(self, job: Job, params: dict[str, Any]) -> dict[str, Any]:
        assert self.clients is not None
        trace = job.trace
        start, timeouts = time.monotonic(), self.leg_timeouts(params)
        for attempt in range(1 + self.config.retries):
            try:
                async with self.pair(job, params) as pair:
                    body, rid, adapter, on_decode = self._leg(job, pair, params)
                    out = await generate(self.clients, pair, body, rid, timeouts, adapter, on_decode)
                    meta = out.get("meta_info", {})
                    trace.record_meta(meta)
                break
            except ApiError as err:
                if not err.retry or attempt == self.config.retries:
                    raise
        self.metrics.observe_done(job.task, meta, time.monotonic() - start)
        return out

    async def run_all(self, runs: list[tuple[Job, dict[str, Any]]]) -> list[dict[str, Any]]:
        """One answer per (prompt, choice); a failed one cancels the others (aborting their legs)."""
        if len(runs) == 1:
            return [await self.run(*runs[0])]
        try:
            async with asyncio.TaskGroup() as group:
                jobs = [group.create_task(self.run(job, c)) for job, c in runs]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first failure (an ApiError), as for one
        return [job.result() for job in jobs]

    def stream_all(self, runs: list[tuple[Job, dict[str, Any]]]) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """The chunks of every (prompt, choice) as they come, tagged with its index in `runs`."""
        return merge([self.stream(job, c) for job, c in runs])

    async def stream(self, job: Job, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        assert self.clients is not None
        trace = job.trace
        start, first_at, meta = time.monotonic(), None, {}
        timeouts, trace.stream = self.leg_timeouts(params), True
        for attempt in range(1 + self.config.retries):
            try:
                async with self.pair(job, params) as pair:
                    body, rid, adapter, on_decode = self._leg(job, pair, params)
                    chunks = generate_stream(self.clients, pair, body, rid, timeouts, adapter, on_decode)
                    try:
                        async for chunk in chunks:
                            pair.progressed()
                            if first_at is None:
                                first_at = time.monotonic()
                                trace.ttft_ms = round((first_at - start) * 1e3, 3)
                            meta = chunk.get("meta_info", meta)
                            yield chunk
                    finally:
                        await chunks.aclose()
                    trace.record_meta(meta)
                break
            except ApiError as err:
                # Retry only while the client has seen nothing.
                if not err.retry or first_at is not None or attempt == self.config.retries:
                    raise
        ttft = None if first_at is None else first_at - start
        self.metrics.observe_done(job.task, meta, time.monotonic() - start, ttft)
