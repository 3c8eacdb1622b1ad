"""Task data sets: the vendored real tasks, the three benchmarks (gsm8k, humaneval, bfcl:
tasks/benchmarks.py), or any JSONL of chat messages; seeded splits; scoring (tasks/scoring.py).

A task example is a chat (messages, the last one the assistant's answer), the tools its prompt
offers (a tool-calling task), and how its answer is scored. Built-in tasks: bb_2digit_addition,
bb_hyperbaton, rg_family_relationships, bb_sports_understanding, rg_spell_backward
(data/README.md), gsm8k, humaneval, bfcl."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from router.tokenizer import chat_ids

DATA = Path(__file__).parent / "data"
BUILT_IN = (
    "bb_2digit_addition",
    "bb_hyperbaton",
    "rg_family_relationships",
    "bb_sports_understanding",
    "rg_spell_backward",
)


@dataclass(frozen=True)
class Example:
    messages: tuple[tuple[str, str], ...]  # (role, content) of the prompt turns
    answer: str  # the assistant's reply (the training target; exact match scores against it)
    tools: str | None = None  # JSON of the OpenAI-form tools the prompt offers
    scorer: str = "exact"  # exact, final_number (gsm8k), execution (humaneval), bfcl_ast (bfcl)
    reference: str | None = None  # JSON the scorer reads: a test program, BFCL's possible answers

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def tool_list(self) -> list[dict] | None:
        return json.loads(self.tools) if self.tools else None


def load(task: str) -> list[Example]:
    """A built-in task by name, a JSONL file, or a `datasets` folder (`save_to_disk`): rows of
    {"prompt", "answer"} or {"messages": [...]} whose last message is the assistant's. A benchmark
    with its own test set: its training examples then its test set (train_test keeps them apart)."""
    from sun_sglang.tasks import benchmarks

    if task in benchmarks.BENCHMARKS:
        train, test = benchmarks.load(task)
        return train + test
    path = DATA / f"{task}.jsonl" if task in BUILT_IN else Path(task)
    if path.is_dir():
        rows = [(f"{path}[{i}]", row) for i, row in enumerate(_dataset_rows(path))]
    elif path.is_file():
        lines = enumerate(path.read_text().splitlines(), 1)
        rows = [(f"{path}:{n}", json.loads(line)) for n, line in lines if line.strip()]
    else:
        known = ", ".join((*BUILT_IN, *benchmarks.BENCHMARKS))
        raise FileNotFoundError(f"no task {task!r}: not one of {known}, not a file, not a datasets folder")
    examples: dict[tuple, Example] = {}  # a repeated prompt is kept once: splits stay disjoint
    for where, row in rows:
        example = _example(row, where)
        examples.setdefault((example.messages, example.tools), example)
    return list(examples.values())


def _dataset_rows(path: Path) -> list[dict]:
    """The rows of a folder written by `datasets` (Dataset.save_to_disk; a DatasetDict's `train`)."""
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise ValueError(f"{path}: a DatasetDict without a 'train' split ({list(data)})")
        data = data["train"]
    return list(data)


def _example(row: dict, where: str) -> Example:
    if "messages" in row:
        *prompt, last = row["messages"]
        if last.get("role") != "assistant" or not prompt:
            raise ValueError(f"{where}: the last message must be the assistant's, after a prompt")
        return Example(tuple((m["role"], m["content"]) for m in prompt), last["content"])
    return Example((("user", row["prompt"]),), row["answer"])


def split(examples: list[Example], seed: int, n_test: int) -> tuple[list[Example], list[Example]]:
    """(train, test), disjoint, drawn by seed."""
    if not 0 < n_test < len(examples):
        raise ValueError(f"n_test={n_test} for {len(examples)} examples")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    test = [examples[i] for i in order[:n_test]]
    train = [examples[i] for i in order[n_test:]]
    return train, test


def train_test(task: str, seed: int, n_test: int) -> tuple[list[Example], list[Example]]:
    """(train, test) of a task: a benchmark with a training source of its own (gsm8k, humaneval)
    trains on it and tests on `n_test` of its test set drawn by seed; any other is split by seed."""
    from sun_sglang.tasks import benchmarks

    if task in benchmarks.BENCHMARKS:
        train, test = benchmarks.load(task)
        if test:
            if not 0 < n_test <= len(test):
                raise ValueError(f"n_test={n_test} for the {len(test)} test examples of {task}")
            return train, random.Random(seed).sample(test, n_test)
    return split(load(task), seed, n_test)


def normalize(text: str) -> str:
    return " ".join(text.strip().split()).rstrip(".").lower()


def exact_match(prediction: str, answer: str) -> bool:
    return normalize(prediction) == normalize(answer)


def prompt_ids(tokenizer, example: Example) -> list[int]:  # noqa: ANN001 (a transformers tokenizer)
    """The task's chat template over the prompt turns (and tools), exactly as the gateway applies
    it: tools as SGLang's `Tool` model dumps them (router/api/tools.py), what the template renders."""
    tools = example.tool_list()
    if tools:
        from sglang.srt.entrypoints.openai.protocol import Tool

        tools = [Tool.model_validate(t).model_dump() for t in tools]
    return chat_ids(tokenizer, example.chat(), tools)


def answer_ids(tokenizer, example: Example) -> list[int]:  # noqa: ANN001
    """The reply's tokens and the end-of-turn token that stops generation."""
    return tokenizer.encode(example.answer, add_special_tokens=False) + [tokenizer.eos_token_id]
