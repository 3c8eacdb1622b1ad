"""sun-sglang's changes to SGLang: plugin hooks first, versioned patches only where no hook reaches.

- `cpu_hooks`: the prefill/decode transfer fixes for CPU-only machines (SGLANG_CPU.md items 4-6)
  and, in `lora_hooks`, multi-LoRA prefill servers on CPU (item 8),
  registered through SGLang's `sglang.srt.plugins` entry point in every SGLang process.
- `versioned`: unified diffs for import-time failures that happen before any plugin loads
  (torchvision's fake-kernel registration), applied and verified by scripts/setup.sh.
- `selfcheck`: every hook target and patched file is pinned to the installed versions; a mismatch
  fails loudly, naming the target, at install, at launch and inside each SGLang process.
"""

SGLANG_VERSION = "0.5.23"
