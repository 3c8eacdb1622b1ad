"""Hooks that let SGLang's prefill/decode KV transfer run on CPU-only machines (SGLANG_CPU.md 4-6),
and its LoRA (item 8, `lora_hooks`).

Each hook is registered on one SGLang function and pinned (selfcheck.Pin) to the source of the
function whose behaviour it relies on, so that an SGLang upgrade that moves it fails loudly.
"""

from __future__ import annotations

from typing import Any

from patches import lora_hooks
from patches.selfcheck import Pin

_PREFILL = "sglang.srt.disaggregation.prefill.SchedulerDisaggregationPrefillMixin"
SEND_KV_CHUNK = f"{_PREFILL}._send_kv_chunk"
SEND_CACHED_PREFIX = f"{_PREFILL}.maybe_send_cached_prefix_chunk"
NIXL_MANAGER_INIT = "sglang.srt.disaggregation.nixl.conn.NixlKVManager.__init__"
NIXL_AGENT_CONFIG = "nixl_cu12._bindings.nixlAgentConfig"
NIXL_PROGRESS_DELAY_US = 200

PINS = [
    Pin(SEND_KV_CHUNK, "0cc9ca5c573552d23a8541a58be2fdc8c2949e80697a0a36c66d1ae0dfd3f3b7"),
    Pin(SEND_CACHED_PREFIX, "cc020aadd8c3b77eb439c2b0278b368a6bb6d278911c5d2fe0a0f386ece1ff2b"),
    Pin(NIXL_MANAGER_INIT, "4390f2f2c2c6c23220358d5733318653f6db99b5171fb37cad4d5f625e90a142"),
    # The decode side passes explicit "VRAM" kinds from here; the NIXL hook overrides them.
    # NIXL's Python agent hard-codes the progress thread's delay to 0 here.
    Pin(
        "nixl_cu12._api.nixl_agent.__init__",
        "909c5cf76fcf41388f80796e41813a673d7b96df926e5a0ed76bb172c0d2be3a",
    ),
    Pin(
        "sglang.srt.disaggregation.decode.DecodePreallocQueue._init_kv_manager",
        "bca581d7886d32a86755b369e6aa22c2b508495a3aa580b3046ddd70ae20ede8",
    ),
    *lora_hooks.PINS,
]


def send_kv_chunk_host_indices(original: Any, scheduler: Any, req: Any, *args: Any, **kw: Any):
    """Item 4: mooncake's sender advertises `supports_host_tensor_indices`, which makes the
    prefill stage page indices in pinned memory behind a torch.cuda.Event. On CPU the indices
    already live on the host: shadow the class flag on this request's sender."""
    req.disagg_kv_sender.supports_host_tensor_indices = False
    return original(scheduler, req, *args, **kw)


def send_cached_prefix_without_cuda_event(original: Any, scheduler: Any, *args: Any, **kw: Any):
    """Item 5: under overlap scheduling the early send of a cached prefix records a
    torch.cuda.Event on the forward stream. CPU streams are synchronous, so there is nothing to
    wait for: run it as without overlap."""
    overlap = scheduler.enable_overlap
    scheduler.enable_overlap = False
    try:
        return original(scheduler, *args, **kw)
    finally:
        scheduler.enable_overlap = overlap


def nixl_kv_in_dram(manager: Any, *args: Any, **kw: Any) -> None:
    """Item 6: NIXL registers the KV pool as VRAM (the prefill's default and the decode's explicit
    kinds); on CPU it is DRAM, else registration fails with NIXL_ERR_BACKEND."""
    kv_args = kw["args"] if "args" in kw else args[0]
    kv_args.kv_data_mem_kinds = ["DRAM"] * len(kv_args.kv_data_ptrs)


def polite_nixl_agent_config() -> type:
    """NIXL's Python agent sets the progress thread's delay to 0, so the thread spins on
    sched_yield: with three servers on two cores that starved the model (a 16-token request took
    20-40 s instead of 2-3 s). A subclass of the binding's config raises the delay to
    NIXL_PROGRESS_DELAY_US; turning the thread off instead hangs the transfers."""
    from nixl_cu12 import _bindings

    class PoliteAgentConfig(_bindings.nixlAgentConfig):
        def __setattr__(self, name: str, value: Any) -> None:
            if name == "pthrDelay":
                value = max(int(value), NIXL_PROGRESS_DELAY_US)
            super().__setattr__(name, value)

    return PoliteAgentConfig


def register() -> None:
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    HookRegistry.register(SEND_KV_CHUNK, send_kv_chunk_host_indices, HookType.AROUND)
    HookRegistry.register(SEND_CACHED_PREFIX, send_cached_prefix_without_cuda_event, HookType.AROUND)
    HookRegistry.register(NIXL_MANAGER_INIT, nixl_kv_in_dram, HookType.BEFORE)
    lora_hooks.register()
    if _nixl_installed():
        HookRegistry.register(NIXL_AGENT_CONFIG, polite_nixl_agent_config(), HookType.REPLACE)


def _nixl_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("nixl_cu12") is not None
