"""A multi-task workload, as data: which task each request goes to (uniform or Zipf popularity),
when it arrives (Poisson, bursty gamma, or a closed loop at fixed concurrency), its prompt and
its output length. Pure and seeded: the same config gives the same schedule.

Multi-turn (`turns` above 1): each planned item is a conversation of a seeded number of turns;
the arrival process starts conversations, `concurrency` bounds the conversations in flight, and
each turn after the first is sent a think time after the previous answer, with the whole
history (the answers as the server gave them) and a new user message."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from sun_sglang import tasks as task_data


class Lengths(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A token-count distribution: `low` == `high` is a fixed length."""

    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)


class WorkloadConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tasks: list[str]  # task (model) names at the gateway
    popularity: Literal["uniform", "zipf"] = "uniform"
    zipf_alpha: float = 1.0  # task k (1-based, in the order given) has weight k^-alpha
    arrival: Literal["poisson", "gamma", "closed"] = "poisson"
    rate: float = 1.0  # requests per second (poisson, gamma)
    burstiness: float = 1.0  # gamma shape; < 1 is burstier than Poisson (1 = Poisson)
    concurrency: int = 8  # closed loop: requests in flight at all times; open loop: a cap
    num_requests: int = 100
    duration_s: float | None = None  # stop issuing after this long, whichever comes first
    prompt_source: Literal["synthetic", "tasks"] = "synthetic"
    prompt_words: Lengths = Lengths(32, 64)  # synthetic prompts
    task_data: dict[str, str] = {}  # task name -> built-in data set or JSONL (prompt_source=tasks)
    output_tokens: Lengths = Lengths(32, 32)
    ignore_eos: bool = True  # exactly output_tokens per request (SGLang's ignore_eos)
    seed: int = 0
    turns: Lengths = Lengths(1, 1)  # turns per conversation; above 1, num_requests counts conversations
    think_time_s: float = 0.0  # mean pause (exponential) between an answer and the next turn

    @property
    def multi_turn(self) -> bool:
        return self.turns.high > 1

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("the workload needs at least one task")
        if self.rate <= 0 or self.concurrency < 1 or self.num_requests < 1:
            raise ValueError("rate, concurrency and num_requests must be positive")
        if self.turns.low < 1 or self.turns.high < self.turns.low or self.think_time_s < 0:
            raise ValueError("turns must be LOW:HIGH with 1 <= LOW <= HIGH; think_time_s >= 0")
        missing = [t for t in self.tasks if self.prompt_source == "tasks" and t not in self.task_data]
        if missing:
            raise ValueError(f"prompt_source=tasks needs task_data for {missing}")


@dataclass(frozen=True)
class PlannedRequest:
    index: int
    task: str
    at_s: float  # send time after the start (0 for a closed loop: sent when a slot frees)
    messages: list[dict[str, str]]  # multi-turn: this turn's new user message only
    max_tokens: int
    conversation: int | None = None  # multi-turn: the conversation and the turn (0-based)
    turn: int = 0
    think_s: float = 0.0  # multi-turn: pause after the previous answer before sending


@dataclass(frozen=True)
class PlannedConversation:
    turns: list[PlannedRequest]  # all of one task, the first sent at its at_s

    @property
    def index(self) -> int:
        return self.turns[0].conversation or 0

    @property
    def at_s(self) -> float:
        return self.turns[0].at_s


def task_weights(n: int, popularity: str, alpha: float) -> list[float]:
    if popularity == "uniform":
        return [1.0 / n] * n
    raw = [(k + 1) ** -alpha for k in range(n)]
    return [w / sum(raw) for w in raw]


def arrival_gaps(cfg: WorkloadConfig, rng: random.Random, n: int) -> list[float]:
    """Seconds between consecutive sends; mean 1/rate for the open-loop kinds."""
    if cfg.arrival == "closed":
        return [0.0] * n
    shape = 1.0 if cfg.arrival == "poisson" else cfg.burstiness
    return [rng.gammavariate(shape, 1.0 / (shape * cfg.rate)) for _ in range(n)]


_WORDS = "the of and to in is was for on that with as by at from his her an which or be are".split()


def _synthetic_prompt(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def plan(cfg: WorkloadConfig) -> list[PlannedRequest]:
    rng = random.Random(cfg.seed)
    weights = task_weights(len(cfg.tasks), cfg.popularity, cfg.zipf_alpha)
    pools: dict[str, Sequence[task_data.Example]] = {}
    if cfg.prompt_source == "tasks":
        pools = {t: task_data.load(cfg.task_data[t]) for t in cfg.tasks}
    gaps = arrival_gaps(cfg, rng, cfg.num_requests)
    at, out = 0.0, []
    for i in range(cfg.num_requests):
        task = rng.choices(cfg.tasks, weights)[0]
        if pools:
            messages = rng.choice(pools[task]).chat()
        else:
            messages = [{"role": "user", "content": _synthetic_prompt(rng, cfg.prompt_words.draw(rng))}]
        at += gaps[i]
        out.append(PlannedRequest(i, task, at, messages, cfg.output_tokens.draw(rng)))
    return out


def plan_conversations(cfg: WorkloadConfig) -> list[PlannedConversation]:
    """`num_requests` conversations; request indices count turns across all of them."""
    starts = plan(cfg)  # tasks, arrivals and first turns
    rng = random.Random(cfg.seed + 1)
    out, index = [], 0
    for first in starts:
        turns = []
        for t in range(cfg.turns.draw(rng)):
            if t == 0:
                messages = first.messages
            else:
                messages = [{"role": "user", "content": _synthetic_prompt(rng, cfg.prompt_words.draw(rng))}]
            think = rng.expovariate(1.0 / cfg.think_time_s) if t and cfg.think_time_s > 0 else 0.0
            max_tokens = first.max_tokens if t == 0 else cfg.output_tokens.draw(rng)
            turns.append(
                PlannedRequest(index, first.task, first.at_s, messages, max_tokens, first.index, t, think)
            )
            index += 1
        out.append(PlannedConversation(turns))
    return out
