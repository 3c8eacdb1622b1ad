"""Small models built here: a tiny random Llama and Qwen2 for plumbing tests, and seeded task variants.

A task variant is the base with seeded relative noise on every weight: distinct weights of the
same architecture, standing in for a fine-tuned prefill module where no training is wanted.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sun_sglang.models.common import save_greedy


def build_tiny(out_dir: Path, tokenizer_dir: Path, seed: int = 0) -> None:
    """A 2-layer random Llama (d=64, 4 heads, 2 KV heads, tied head) with SmolLM2's tokenizer."""
    from transformers import LlamaConfig

    _build(out_dir, tokenizer_dir, seed, LlamaConfig, tie_word_embeddings=True, rope_theta=10000.0)


def build_tiny_qwen2(out_dir: Path, tokenizer_dir: Path, seed: int = 0) -> None:
    """A 2-layer random Qwen2 (biased QKV, untied head) with Qwen2.5's tokenizer and template;
    it stops at <|im_end|> and <|endoftext|>."""
    from transformers import Qwen2Config

    _build(out_dir, tokenizer_dir, seed, Qwen2Config, tie_word_embeddings=False, end_of_turn="<|im_end|>")


def _build(
    out_dir: Path, tokenizer_dir: Path, seed: int, config_class: type, end_of_turn: str | None = None, **arch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = tokenizer.convert_tokens_to_ids(end_of_turn) if end_of_turn else tokenizer.eos_token_id
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        dtype=torch.float32,
        **arch,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    extra_eos = (tokenizer.convert_tokens_to_ids("<|endoftext|>"),) if end_of_turn else ()
    save_greedy(model, tokenizer, out_dir, extra_eos=extra_eos)


def build_variant(out_dir: Path, base_dir: Path, seed: int, scale: float) -> None:
    """base + seeded noise of `scale` times each tensor's std; config and tokenizer unchanged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            noise = torch.randn(param.shape, generator=gen, dtype=param.dtype)
            param.add_(noise * param.std() * scale)
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
