"""The two caches of the SUN hand-off in training, built so that activation checkpointing stays
exact (shared/TRAINING_AT_SCALE.md, traps 1-2).

The prefill module's cache keeps each layer's prompt K/V and, when a checkpointed layer runs again
in the backward pass, replaces them instead of appending a second copy. The decode module's cache
reads the prompt K/V in front of the answer's and never grows: a recompute sees the same prompt.
The K/V stay in the autograd graph, so the decode module's loss reaches the prefill module."""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class _PromptLayer(DynamicLayer):
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.values = key_states, value_states  # a recompute overwrites, never appends
        return key_states, value_states


class _HandOffLayer(DynamicLayer):
    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


class PromptCache(DynamicCache):
    """Pass as the prefill module's past_key_values (use_cache=True)."""

    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=_PromptLayer)


class HandOffCache(DynamicCache):
    """The prompt's K/V, read-only: pass as the decode module's past_key_values."""

    def __init__(self, prompt: Cache) -> None:
        Cache.__init__(self, layers=[_HandOffLayer(layer.keys, layer.values) for layer in prompt.layers])
