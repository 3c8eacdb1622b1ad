"""The SUN reference: prompt KV and first token from the prefill module, every later token from
the frozen decode module attending to that KV. This is what a SUN cluster serves (SGLang's PD:
the prefill server samples the first token and ships it with the KV), so it is the oracle the
serving path must match, token for token, under greedy decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(path: str, dtype: str = "float32", attention: str = "eager") -> PreTrainedModel:
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_DTYPES[dtype], attn_implementation=attention)
    return model.eval()


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L] token ids and attention mask, prompts aligned to the right edge."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise ValueError(f"prompt {row} is empty")
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


@torch.no_grad()
def sun_generate(
    prefill: PreTrainedModel,
    decode: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_token_ids: Sequence[int] = (),
    pad_id: int = 0,
) -> list[list[int]]:
    """Greedy SUN generation for a batch of token-id prompts (left padding, explicit positions).
    Each output includes the stop token that ended it, as SGLang's output_ids do."""
    ids, mask = left_pad(prompts, pad_id)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = prefill(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    cache = out.past_key_values
    token = out.logits[:, -1].argmax(-1)
    next_pos = mask.sum(-1)
    stops = torch.tensor(list(stop_token_ids), dtype=torch.long)
    outputs: list[list[int]] = [[] for _ in prompts]
    done = torch.zeros(len(prompts), dtype=torch.bool)
    for step in range(max_new_tokens):
        for row in torch.nonzero(~done).flatten().tolist():
            outputs[row].append(int(token[row]))
        done |= torch.isin(token, stops)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=torch.long)], dim=1)
        out = decode(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=next_pos[:, None],
            past_key_values=cache,
            use_cache=True,
        )
        cache = out.past_key_values
        token = torch.where(done, torch.full_like(token, pad_id), out.logits[:, -1].argmax(-1))
        next_pos = next_pos + 1
    return outputs


@dataclass
class SunReference:
    """A prefill module and the decode module, loaded once."""

    prefill: PreTrainedModel
    decode: PreTrainedModel
    stop_token_ids: tuple[int, ...]
    pad_id: int

    @classmethod
    def load(cls, prefill_path: str, decode_path: str, dtype: str = "float32") -> SunReference:
        """`prefill_path` is a checkpoint, or a LoRA adapter on the decode module (merged)."""
        from sun_sglang import adapters

        decode = load_model(decode_path, dtype)
        if adapters.is_adapter(prefill_path):
            prefill = adapters.merged(decode, prefill_path)
        else:
            prefill = decode if prefill_path == decode_path else load_model(prefill_path, dtype)
        eos = prefill.generation_config.eos_token_id
        stops = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())
        pad = prefill.generation_config.pad_token_id
        return cls(prefill, decode, stops, pad if pad is not None else 0)

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        return sun_generate(
            self.prefill, self.decode, prompts, max_new_tokens, self.stop_token_ids, self.pad_id
        )


@torch.no_grad()
def sun_logprobs(
    prefill: PreTrainedModel, decode: PreTrainedModel, prompt: Sequence[int], output: Sequence[int]
) -> list[float]:
    """The log-probability of each output token under SUN serving: the first from the prefill
    module's last prompt position, each later one from the decode module on the prefill KV."""
    ids = torch.tensor([list(prompt)])
    out = prefill(input_ids=ids, use_cache=True)
    logps = [torch.log_softmax(out.logits[0, -1].float(), -1)[output[0]].item()]
    if len(output) > 1:
        follow = torch.tensor([list(output[:-1])])
        positions = torch.arange(len(prompt), len(prompt) + len(output) - 1)[None]
        rest = decode(input_ids=follow, position_ids=positions, past_key_values=out.past_key_values).logits
        table = torch.log_softmax(rest[0].float(), -1)
        logps += [table[i, token].item() for i, token in enumerate(output[1:])]
    return logps
