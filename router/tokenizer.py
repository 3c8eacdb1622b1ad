"""Each task's tokenizer and chat template, applied once in the gateway: both servers of a request
get the same token ids, so the decode side can never count a different prompt length."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from router.errors import ApiError


class TaskTokenizer:
    def __init__(self, model_path: str) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.stop_token_ids = sorted(_eos_ids(Path(model_path)) | {self.tokenizer.eos_token_id} - {None})
        self.context_len = _context_len(Path(model_path))  # prompt + new tokens; None if unknown

    def chat_ids(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        template_kwargs: dict[str, Any] | None = None,
    ) -> list[int]:
        return chat_ids(self.tokenizer, messages, tools, template_kwargs)

    def text_ids(self, prompt: str) -> list[int]:
        return self.tokenizer.encode(prompt)


def check_lengths(prompt: int, new_tokens: int, max_prompt: int | None, context: int | None) -> None:
    """400 before any server sees a request that is empty, over the gateway's prompt limit, or
    longer (prompt + max new tokens) than the model's context."""
    if prompt == 0:
        raise ApiError(400, "the prompt is empty", param="messages")
    if max_prompt is not None and prompt > max_prompt:
        raise ApiError(400, f"the prompt has {prompt} tokens; the limit is {max_prompt}", param="messages")
    if context is not None and prompt + new_tokens > context:
        raise ApiError(
            400,
            f"this model's context is {context} tokens; the prompt ({prompt}) plus max_tokens"
            f" ({new_tokens}) exceeds it",
            param="max_tokens",
        )


def chat_ids(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    template_kwargs: dict[str, Any] | None = None,
) -> list[int]:
    """A task's chat template over `messages` (and `tools`, if any), ready for the assistant's
    turn: the one way prompts are built, in the gateway and in training and evaluation alike."""
    out = tokenizer.apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=True, **(template_kwargs or {})
    )
    # transformers 5 returns a BatchEncoding for tokenize=True; older versions a list
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def _eos_ids(model_path: Path) -> set[int]:
    gen = model_path / "generation_config.json"
    if not gen.is_file():
        return set()
    eos = json.loads(gen.read_text()).get("eos_token_id")
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, list) else {eos}


def _context_len(model_path: Path) -> int | None:
    config = model_path / "config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text()).get("max_position_embeddings")
