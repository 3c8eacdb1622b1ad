"""Writing a model folder the way every server and reference here expects it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_greedy(model: Any, tokenizer: Any, out_dir: Path) -> None:
    """Save weights, config and tokenizer, with a generation config that says greedy and names
    the EOS and pad ids explicitly (servers and the reference read their stop tokens from it)."""
    from transformers import GenerationConfig

    config = model.config
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
