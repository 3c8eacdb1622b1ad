"""A discrete-event model of a disaggregated cluster: per-task prefill pools (or one multi-LoRA
pool for every task), and decode workers that are either one shared pool (SUN; multi-LoRA PD,
whose steps also run each request's adapter, at most max_adapters distinct ones per batch) or a
pool per task (conventional).

The gateway's own pools choose the workers (router.pools: the same policy functions and the same
token weights: prompt on prefill, prompt + max new tokens on decode). A prefill worker runs FIFO
batches up to a token budget; each prompt's KV then takes a transfer delay to reach its decode
worker, which admits it when its KV fits (prompt + output reserved, as SGLang's decode does) and
runs continuous batching: every step adds one token to every running request. The prefill server
makes the first token; the decode server streams it when it admits the request into its batch.
First-token time (SGLang's PD path): the decode server pre-allocates the KV's place between its
steps and hands it to the prefill server (the bootstrap), which only then queues the request;
after the prefill and the transfer, the decode server takes the request in between its steps;
the gateway and the servers' HTTP, tokenizer and detokenizer add a fixed time.
Workers pinned to one core share it (sim.cores). Output: loadgen.Record per request, so the load
generator's summary applies unchanged.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from router.pools import DecodePool, PrefillPool, Slot
from sun_sglang.bench.loadgen import Record
from sun_sglang.sim.cores import SharedCore
from sun_sglang.sim.costs import StepCost
from sun_sglang.sim.lora import LoraDecodeCost
from sun_sglang.sim.shape import ClusterShape, SimRequest


@dataclass(eq=False)
class _Job:
    req: SimRequest
    decode: Slot
    prefill: Slot
    sent: float  # when the client sent it (after its arrival, if the client cap held it back)
    joined_step: int = 0
    ttft_at: float | None = None
    handshake_done: float = 0.0  # when the prefill server could queue it


@dataclass(eq=False)
class _Worker:
    url: str
    core: tuple[str, int] | None
    busy: bool = False
    queue: deque = field(default_factory=deque)  # _Job waiting (prefill queue / decode admission)
    running: list = field(default_factory=list)  # decode: _Job in the batch
    finishing: list = field(default_factory=list)  # decode: heap of (finish step, seq, _Job)
    prealloc: deque = field(default_factory=deque)  # decode: _Job waiting to be pre-allocated
    active: int = 0  # decode: pre-allocated, not finished
    steps: int = 0
    context: int = 0  # decode: tokens in the running batch's KV
    reserved: int = 0  # decode: KV tokens reserved by running requests
    adapters: Counter = field(default_factory=Counter)  # decode, multi_lora: admitted, unfinished per task


class Simulator:
    def __init__(
        self,
        shape: ClusterShape,
        prefill_cost: StepCost,
        decode_cost: StepCost,
        closed_concurrency: int | None = None,
        client_cap: int | None = None,
        seed: int = 0,
    ) -> None:
        self.shape, self.prefill_cost, self.decode_cost = shape, prefill_cost, decode_cost
        self.lora = decode_cost if isinstance(decode_cost, LoraDecodeCost) else None
        if (shape.mode == "multi_lora") != (self.lora is not None):
            raise ValueError("mode multi_lora, and only it, takes a LoraDecodeCost for decode")
        self.closed = closed_concurrency
        self.cap = client_cap
        self.events: list = []
        self.seq = itertools.count()
        self.now = 0.0
        self.records: list[Record] = []
        self.stages: dict[int, tuple[float, float]] = {}  # index -> (handshake, wait for the KV) s
        self.in_flight = 0
        self.backlog: deque[SimRequest] = deque()
        self.cores: dict[tuple[str, int], SharedCore] = {}
        self.tenants: Counter[tuple[str, int]] = Counter()  # workers pinned to each core

        def core(kind: str, i: int, cores: int | None) -> tuple[str, int] | None:
            if cores is None:
                return None
            self.tenants[(kind, i % cores)] += 1
            return (kind, i % cores)

        n, m = itertools.count(), itertools.count()

        def prefill_pool(name: str, count: int) -> PrefillPool:
            cores = shape.prefill_cores
            workers = [_Worker(f"p-{name}-{r}", core("p", next(n), cores)) for r in range(count)]
            return PrefillPool(workers, how="least_load", seed=seed)

        def decode_pool(name: str) -> DecodePool:
            cores = shape.decode_cores
            workers = [
                _Worker(f"d-{name}-{i}", core("d", next(m), cores)) for i in range(shape.decode_workers)
            ]
            return DecodePool(workers, how=shape.decode_policy, seed=seed)

        if shape.shared_prefill_workers:  # adapter tasks on multi-LoRA prefill servers
            one = prefill_pool("shared", shape.shared_prefill_workers)
            self.prefill = {t: one for t in shape.tasks}
        else:
            self.prefill = {t: prefill_pool(t, shape.prefill_count(t)) for t in shape.tasks}

        if shape.mode != "conventional":
            shared = decode_pool("shared")
            self.decode = {t: shared for t in shape.tasks}
        else:
            self.decode = {t: decode_pool(t) for t in shape.tasks}

    # -- events --------------------------------------------------------------------------------
    def _at(self, when: float, action, *args) -> None:
        heapq.heappush(self.events, (when, next(self.seq), action, args))

    def run(self, requests: list[SimRequest]) -> tuple[list[Record], float]:
        """Every request to completion; (records by index, seconds until the last one ended)."""
        if self.closed:
            self.backlog.extend(requests)
            for _ in range(min(self.closed, len(requests))):
                self._arrive(self.backlog.popleft())
        else:
            for req in requests:
                self._at(req.at_s, self._arrive, req)
        while self.events:
            self.now, _, action, args = heapq.heappop(self.events)
            action(*args)
        return sorted(self.records, key=lambda r: r.index), self.now

    def _arrive(self, req: SimRequest) -> None:
        if self.cap is not None and self.in_flight >= self.cap:
            self.backlog.append(req)
            return
        self.in_flight += 1
        prefill_pool, decode_pool = self.prefill[req.task], self.decode[req.task]
        job = _Job(req, decode_pool.choose(), prefill_pool.choose([req.index]).slot, self.now)
        prefill_pool.place(job.prefill, req.prompt_tokens)
        decode_pool.place(job.decode, req.prompt_tokens + req.output_tokens)
        if self.shape.prealloc_between_steps:
            job.decode.worker.prealloc.append(job)
            if not job.decode.worker.busy:
                self._preallocate(job.decode.worker)
        else:
            job.decode.worker.active += 1
            self._at(self.now + self.shape.handshake_s, self._to_prefill, job)

    def _preallocate(self, worker: _Worker) -> None:
        """SGLang's PD decode, between its steps: reserve each waiting request's KV in turn while it
        fits (its prompt, the KV of those reserved before, and num_reserved_decode_tokens for each
        of them), then the handshake lets its prefill start. multi_lora: a request whose adapter
        would exceed the limit is passed over here, as SGLang's pre-allocation does."""
        shape = self.shape
        held: deque[_Job] = deque()
        while worker.prealloc:
            req = worker.prealloc[0].req
            if not self._adapter_fits(worker, req):
                held.append(worker.prealloc.popleft())
                continue
            taken = worker.reserved + shape.reserved_decode_tokens * worker.active
            if worker.active and taken + req.prompt_tokens > shape.kv_capacity_tokens:
                break
            job = worker.prealloc.popleft()
            worker.active += 1
            worker.reserved += req.prompt_tokens + req.output_tokens
            worker.adapters[req.task] += 1
            self._at(self.now + shape.handshake_s, self._to_prefill, job)
        held.extend(worker.prealloc)
        worker.prealloc = held

    def _adapter_fits(self, worker: _Worker, req: SimRequest) -> bool:
        """multi_lora: the request's adapter is in the batch already, or the batch has room for it
        (SGLang's can_schedule_lora_req)."""
        return not self.lora or req.task in worker.adapters or len(worker.adapters) < self.lora.max_adapters

    def _to_prefill(self, job: _Job) -> None:
        """The handshake done: the prefill server may run the request (SGLang's bootstrap queue)."""
        job.handshake_done = self.now
        job.prefill.worker.queue.append(job)
        self._kick_prefill(job.prefill.worker)

    def _work(self, worker: _Worker, seconds: float, action: Callable, *args: object) -> None:
        """`seconds` of work on the worker's device (or its share of a core), then action(*args)."""
        worker.busy = True
        if worker.core is None:
            self._at(self.now + seconds, self._done, worker, action, args)
            return
        decode = worker.core[0] == "d"
        overhead = self.shape.decode_core_overhead if decode else 1.0
        tenants = self.tenants[worker.core] if decode and self.shape.decode_idle_spin else 1
        core = self.cores.setdefault(
            worker.core, SharedCore(self._at, lambda: self.now, overhead=overhead, tenants=tenants)
        )
        core.start(worker, seconds, functools.partial(self._done, worker, action, args))

    def _done(self, worker: _Worker, action: Callable, args: tuple) -> None:
        worker.busy = False
        action(*args)

    # -- prefill -------------------------------------------------------------------------------
    def _kick_prefill(self, worker: _Worker) -> None:
        if worker.busy or not worker.queue:
            return
        batch, tokens = [], 0
        budget = self.shape.prefill_budget_tokens
        while worker.queue and (not batch or tokens + worker.queue[0].req.prompt_tokens <= budget):
            job = worker.queue.popleft()
            batch.append(job)
            tokens += job.req.prompt_tokens
        seconds = self.prefill_cost.prefill_s([j.req.prompt_tokens for j in batch])
        self._work(worker, seconds, self._prefilled, worker, batch)

    def _prefilled(self, worker: _Worker, batch: list[_Job]) -> None:
        for job in batch:
            self.prefill[job.req.task].release(job.prefill, job.req.prompt_tokens)
            delay = self.shape.transfer_s + self.shape.transfer_s_per_token * job.req.prompt_tokens
            self._at(self.now + delay, self._transferred, job)
        self._kick_prefill(worker)

    # -- decode --------------------------------------------------------------------------------
    def _transferred(self, job: _Job) -> None:
        job.decode.worker.queue.append(job)
        self._kick_decode(job.decode.worker)

    def _kick_decode(self, worker: _Worker) -> None:
        if worker.busy:
            return
        self._join(worker)
        if not worker.running:
            return
        if self.lora:  # the running batch's adapters (worker.adapters also counts pre-allocated ones)
            distinct = len({job.req.task for job in worker.running})
            seconds = self.lora.decode_step_s(len(worker.running), worker.context, distinct)
        else:
            seconds = self.decode_cost.decode_step_s(len(worker.running), worker.context)
        self._work(worker, seconds, self._stepped, worker)

    def _join(self, worker: _Worker) -> None:
        """Transferred requests join the running batch while it has room: their KV (reserved at
        pre-allocation, or here) and, multi_lora without pre-allocation, their adapter."""
        shape = self.shape
        held: deque[_Job] = deque()  # their adapter would exceed the batch's limit
        while worker.queue and len(worker.running) < shape.max_running:
            req = worker.queue[0].req
            if not shape.prealloc_between_steps and not self._adapter_fits(worker, req):
                held.append(worker.queue.popleft())  # SGLang skips it and takes the next that fits
                continue
            need = req.prompt_tokens + req.output_tokens
            if shape.prealloc_between_steps:
                need = 0  # reserved, and its adapter counted, when pre-allocated
            elif worker.running and worker.reserved + need > shape.kv_capacity_tokens:
                break
            else:
                worker.adapters[req.task] += 1
            job = worker.queue.popleft()
            worker.reserved += need
            worker.context += req.prompt_tokens + 1
            job.joined_step = worker.steps
            job.ttft_at = self.now + shape.first_token_s
            self.stages[job.req.index] = (job.handshake_done - job.sent, self.now - job.handshake_done)
            worker.running.append(job)
            last_step = worker.steps + max(1, req.output_tokens - 1)
            heapq.heappush(worker.finishing, (last_step, next(self.seq), job))
        held.extend(worker.queue)
        worker.queue = held

    def _stepped(self, worker: _Worker) -> None:
        worker.steps += 1
        worker.context += len(worker.running)
        done = []
        while worker.finishing and worker.finishing[0][0] <= worker.steps:
            done.append(heapq.heappop(worker.finishing)[2])
        if done:
            ended = set(map(id, done))
            worker.running = [j for j in worker.running if id(j) not in ended]
            for job in done:
                self._finish(worker, job)
        if self.shape.prealloc_between_steps:
            self._preallocate(worker)
        self._kick_decode(worker)

    def _finish(self, worker: _Worker, job: _Job) -> None:
        req = job.req
        worker.reserved -= req.prompt_tokens + req.output_tokens
        worker.active -= 1
        worker.adapters[req.task] -= 1
        if not worker.adapters[req.task]:
            del worker.adapters[req.task]
        worker.context -= req.prompt_tokens + 1 + (worker.steps - job.joined_step)
        self.decode[req.task].release(job.decode, req.prompt_tokens + req.output_tokens)
        self.records.append(
            Record(
                index=req.index,
                task=req.task,
                sent_s=job.sent,
                ttft_s=(self.now if job.ttft_at is None else job.ttft_at) - job.sent,
                latency_s=self.now + self.shape.first_token_s - job.sent,
                output_tokens=req.output_tokens,
                prompt_tokens=req.prompt_tokens,
            )
        )
        self.in_flight -= 1
        if self.backlog:
            self._arrive(self.backlog.popleft())
