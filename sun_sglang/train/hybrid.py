"""The SUN training forward, in the serving convention (SUN.md section 2): the whole prompt
through the prefill module, the first answer token from its logits, every later answer token from
the decode module attending to the prefill module's KV, which stays attached to the graph so that
gradients reach the prefill module through the decode module's attention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from sun_sglang.reference import left_pad
from sun_sglang.train.kv_cache import HandOffCache, PromptCache


@dataclass(frozen=True)
class Batch:
    prompt_ids: torch.Tensor  # [B, Lp], left-padded
    prompt_mask: torch.Tensor
    answer_ids: torch.Tensor  # [B, La], right-padded; every row has at least one token
    answer_mask: torch.Tensor

    @classmethod
    def build(cls, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], pad_id: int) -> Batch:
        prompt_ids, prompt_mask = left_pad(prompts, pad_id)
        if any(len(a) == 0 for a in answers):
            raise ValueError("every answer needs at least one token")
        width = max(len(a) for a in answers)
        answer_ids = torch.full((len(answers), width), pad_id, dtype=torch.long)
        answer_mask = torch.zeros((len(answers), width), dtype=torch.long)
        for row, answer in enumerate(answers):
            answer_ids[row, : len(answer)] = torch.tensor(answer, dtype=torch.long)
            answer_mask[row, : len(answer)] = 1
        return cls(prompt_ids, prompt_mask, answer_ids, answer_mask)

    @property
    def answer_tokens(self) -> int:
        return int(self.answer_mask.sum())

    @property
    def tokens(self) -> int:
        return int(self.prompt_mask.sum()) + self.answer_tokens


def answer_logits(
    prefill: PreTrainedModel, decode: PreTrainedModel, batch: Batch, always_decode: bool = False
) -> torch.Tensor:
    """[B, La, V]: row t predicts answer token t. Position 0 from the prefill module's last prompt
    position; positions 1.. from the decode module over answer[:-1] on the prefill KV.

    `always_decode`: run the decode module even when every answer is one token long (its output
    then counts zero times). A sharded decode module needs every process in each of its forwards
    and backwards: a process that skipped one would stall or abort the others."""
    positions = (batch.prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = prefill(
        input_ids=batch.prompt_ids,
        attention_mask=batch.prompt_mask,
        position_ids=positions,
        past_key_values=PromptCache(),
        use_cache=True,
        logits_to_keep=1,
    )
    first = out.logits[:, -1:]
    if batch.answer_ids.shape[1] == 1:
        if not always_decode:
            return first
        start = batch.prompt_mask.sum(-1, keepdim=True)
        idle = decode(
            input_ids=batch.answer_ids,
            attention_mask=torch.cat([batch.prompt_mask, batch.answer_mask], dim=1),
            position_ids=start,
            past_key_values=HandOffCache(out.past_key_values),
            use_cache=True,
        ).logits
        return first + 0.0 * idle  # the same graph as every other process's, weighing nothing
    follow = batch.answer_ids[:, :-1]
    start = batch.prompt_mask.sum(-1, keepdim=True)
    rest = decode(
        input_ids=follow,
        attention_mask=torch.cat([batch.prompt_mask, batch.answer_mask[:, :-1]], dim=1),
        position_ids=start + torch.arange(follow.shape[1]),
        past_key_values=HandOffCache(out.past_key_values),
        use_cache=True,
    ).logits
    return torch.cat([first, rest], dim=1)


def answer_nll(
    prefill: PreTrainedModel, decode: PreTrainedModel, batch: Batch, always_decode: bool = False
) -> torch.Tensor:
    """Summed negative log-likelihood of the answer tokens (divide by batch.answer_tokens)."""
    logits = answer_logits(prefill, decode, batch, always_decode)
    targets = batch.answer_ids.masked_fill(batch.answer_mask == 0, -100)
    flat = logits.flatten(0, 1).float()
    return F.cross_entropy(flat, targets.flatten(), ignore_index=-100, reduction="sum")
