"""Task accuracy of a configuration (a prefill module in front of a decode module), greedy:
offline with the SUN reference, or served through a running cluster's gateway. Both see the same
prompt token ids (the task's chat template) and must give the same answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import aiohttp
from transformers import AutoTokenizer

from sun_sglang import tasks
from sun_sglang.reference import SunReference
from sun_sglang.tasks import scoring


@dataclass(frozen=True)
class Result:
    accuracy: float
    predictions: list[str]
    correct: list[bool]

    @property
    def n(self) -> int:
        return len(self.predictions)


def score(predictions: Sequence[str], examples: Sequence[tasks.Example]) -> Result:
    correct = scoring.correct(predictions, examples)
    return Result(sum(correct) / len(correct), list(predictions), correct)


def answer_budget(tokenizer, examples: Sequence[tasks.Example]) -> int:  # noqa: ANN001
    """Enough new tokens for the longest reference answer and its stop token, plus slack: a
    quarter more where the answer is free-form (a worked solution, code), whose length varies."""
    longest = max(len(tasks.answer_ids(tokenizer, ex)) for ex in examples)
    free_form = any(ex.scorer in ("final_number", "execution") for ex in examples)
    return longest + (longest // 4 if free_form else 0) + 4


def evaluate_offline(
    prefill: str, decode: str, examples: Sequence[tasks.Example], batch_size: int = 32, dtype: str = "float32"
) -> Result:
    texts = [t for chunk in answers_offline(prefill, decode, examples, batch_size, dtype) for t in chunk]
    return score(texts, examples)


def answers_offline(
    prefill: str,
    decode: str,
    examples: Sequence[tasks.Example],
    batch_size: int = 32,
    dtype: str = "float32",
    budget: int | None = None,
) -> Iterator[list[str]]:
    """Greedy answers through the SUN reference, a batch at a time (a caller may keep each)."""
    ref = SunReference.load(prefill, decode, dtype)
    tokenizer = AutoTokenizer.from_pretrained(prefill)
    budget = budget or answer_budget(tokenizer, examples)
    prompts = [tasks.prompt_ids(tokenizer, ex) for ex in examples]
    for start in range(0, len(prompts), batch_size):
        outputs = ref.generate(prompts[start : start + batch_size], budget)
        yield [tokenizer.decode(ids, skip_special_tokens=True) for ids in outputs]


async def _served(
    url: str, model: str, examples: Sequence[tasks.Example], budget: int, concurrency: int, api_key: str
) -> list[str]:
    limit = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}

    async def one(session: aiohttp.ClientSession, ex: tasks.Example) -> str:
        body = {"model": model, "messages": ex.chat(), "max_tokens": budget, "temperature": 0}
        if ex.tools:
            body["tools"] = ex.tool_list()
        async with limit, session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"{url}: HTTP {resp.status}: {data}")
            return _as_text(data["choices"][0]["message"])

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        return list(await asyncio.gather(*(one(session, ex) for ex in examples)))


def _as_text(message: dict) -> str:
    """The answer as the model wrote it: the content, or the tool calls the API parsed out of it,
    written back in the model's call format (what the offline scorer reads)."""
    calls = message.get("tool_calls") or []
    if not calls:
        return message.get("content") or ""
    from sun_sglang.tasks import bfcl

    return bfcl.call_text([(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls])


def evaluate_served(
    url: str,
    model: str,
    tokenizer_path: str,
    examples: Sequence[tasks.Example],
    concurrency: int = 8,
    api_key: str = "none",
) -> Result:
    """Through a gateway: `model` names the task, `tokenizer_path` its prefill module (for the
    answer budget, the same as offline)."""
    budget = answer_budget(AutoTokenizer.from_pretrained(tokenizer_path), examples)
    texts = asyncio.run(_served(url.rstrip("/"), model, examples, budget, concurrency, api_key))
    return score(texts, examples)
