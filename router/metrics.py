"""Prometheus metrics of the gateway (one registry per gateway, served at /metrics)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from router.pools import Pool
from router.supervision import STATES, Supervised

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
_TPOT_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)


# No `_created` series: a timestamp per counter and histogram, per task, that no dashboard reads
# (a third of /metrics at a thousand tasks).
disable_created_metrics()


class GatewayMetrics:
    """`task_histograms`: latency, TTFT and TPOT histograms per task (about 40 series each), or
    one set for all tasks (label task="*"): a fleet of a thousand tasks keeps its per-task
    counters and a /metrics a tenth the size (docs/PERFORMANCE.md, fleet scale)."""

    def __init__(self, task_histograms: bool = True) -> None:
        self.task_histograms = task_histograms
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sun_requests", "Requests answered", ["task", "endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "sun_request_latency_seconds",
            "End-to-end latency",
            ["task"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "sun_ttft_seconds",
            "Time to first token (streamed)",
            ["task"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "sun_tpot_seconds",
            "Time per output token after the first (streamed)",
            ["task"],
            buckets=_TPOT_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("sun_prompt_tokens", "Prompt tokens", ["task"], registry=r)
        self.cached_tokens = Counter(
            "sun_cached_prompt_tokens", "Prompt tokens from prefill cache", ["task"], registry=r
        )
        self.output_tokens = Counter("sun_output_tokens", "Output tokens", ["task"], registry=r)
        self.task_in_flight = Gauge("sun_task_in_flight", "Requests in flight per task", ["task"], registry=r)
        self.worker_in_flight = Gauge(
            "sun_worker_in_flight", "Requests in flight per worker", ["pool", "worker"], registry=r
        )
        self.worker_load = Gauge(
            "sun_worker_load_tokens", "Token-weighted load per worker", ["pool", "worker"], registry=r
        )
        self.worker_external = Gauge(
            "sun_worker_external_tokens",
            "Tokens a worker reported (/v1/loads) beyond the gateway's own count",
            ["pool", "worker"],
            registry=r,
        )
        self.pool_workers = Gauge("sun_pool_workers", "Workers per pool", ["pool", "state"], registry=r)
        self.restarts = Gauge(
            "sun_supervised_restarts", "Restarts by the launcher's supervisor", ["process", "url"], registry=r
        )
        self.supervised_state = Gauge(
            "sun_supervised_state", "1 for the process's supervision state", ["process", "state"], registry=r
        )
        self._per_task: dict[str, tuple] = {}
        self._answered: dict[str, set[tuple[str, str]]] = {}  # task -> (endpoint, status) it has

    def count_request(self, task: str, endpoint: str, status: int) -> None:
        self.requests.labels(task, endpoint, str(status)).inc()
        self._answered.setdefault(task, set()).add((endpoint, str(status)))

    def forget_task(self, task: str) -> None:
        """A task gone (an adapter unloaded): its series go, so that what /metrics holds stays
        bounded by the tasks there are, however many came and went."""
        for endpoint, status in self._answered.pop(task, ()):
            self.requests.remove(task, endpoint, status)
        self._per_task.pop(task, None)
        for metric in (self.latency, self.prompt_tokens, self.cached_tokens, self.output_tokens):
            metric.remove(task)  # a label never set is no error
        for metric in (self.ttft, self.tpot, self.task_in_flight):
            metric.remove(task)

    def observe_done(self, task: str, meta: dict, latency_s: float, ttft_s: float | None = None) -> None:
        m = self._per_task.get(task) or self._children(task)
        m[0].observe(latency_s)
        completion = meta.get("completion_tokens", 0)
        m[1].inc(meta.get("prompt_tokens", 0))
        m[2].inc(meta.get("cached_tokens", 0))
        m[3].inc(completion)
        if ttft_s is not None:
            m[4].observe(ttft_s)
            if completion > 1:
                m[5].observe((latency_s - ttft_s) / (completion - 1))

    def _children(self, task: str) -> tuple:
        """Labelled children looked up once per task (labels() costs a lock and a dict walk)."""
        label = task if self.task_histograms else "*"
        counters = tuple(m.labels(task) for m in (self.prompt_tokens, self.cached_tokens, self.output_tokens))
        self._per_task[task] = (
            self.latency.labels(label),
            *counters,
            self.ttft.labels(label),
            self.tpot.labels(label),
        )
        return self._per_task[task]

    def render(self, pools: list[tuple[str, Pool]], supervised: Iterable[Supervised] = ()) -> bytes:
        """Refresh the pool and supervision gauges, then the exposition text."""
        for proc in supervised:
            self.restarts.labels(proc.name, proc.url).set(proc.restarts)
            for state in STATES:
                self.supervised_state.labels(proc.name, state).set(float(proc.state == state))
        self.worker_in_flight.clear()
        self.worker_load.clear()
        self.worker_external.clear()
        for name, pool in pools:
            for slot in pool.slots:
                self.worker_in_flight.labels(name, slot.url).set(slot.requests)
                self.worker_load.labels(name, slot.url).set(slot.load)
                self.worker_external.labels(name, slot.url).set(slot.external)
            for state, count in (
                ("healthy", sum(s.healthy and not s.draining for s in pool.slots)),
                ("unhealthy", sum(not s.healthy for s in pool.slots)),
                ("draining", sum(s.draining for s in pool.slots)),
            ):
                self.pool_workers.labels(name, state).set(count)
        return generate_latest(self.registry)
