"""SGLang's LoRA on CPU-only machines (SGLANG_CPU.md item 8): multi-adapter prefill servers.

SGLang's LoRA code stages small index tensors in pinned host memory (`pin_memory=True`,
`.pin_memory()`), which raises without an accelerator. On CPU those tensors already live where
they are used, so pinning has nothing to do: each hook runs one LoRA function with pinning made a
no-op for the length of the call. The torch_native backend is the one that runs on CPU (csgmv
fails there); the launcher chooses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from patches.selfcheck import Pin

_MANAGER = "sglang.srt.lora.lora_manager.LoRAManager"
SET_LORA_MODULE = f"{_MANAGER}.set_lora_module"  # builds the LoRA layers (pinned offsets)
UPDATE_LORA_INFO = f"{_MANAGER}.update_lora_info"  # re-binds layers to buffers (pinned offsets)
PREPARE_BATCH = "sglang.srt.lora.backend.torch_backend.TorchNativeLoRABackend.prepare_lora_batch"

PINS = [
    Pin(SET_LORA_MODULE, "c40985a4f72048872dccda2c8bc32c141e620120f4cb399fbaeaa9f760f8431b"),
    Pin(UPDATE_LORA_INFO, "2a9840a0582ff473f6338419f3912bf8a96b3a6a7be47276ff244f548cbb8476"),
    Pin(PREPARE_BATCH, "6edc13176598b063442f963ac668e9b60e95927f7647e1e5da7d93562c31cf57"),
    # The layers whose constructors and set_lora_info pin: called from the two manager methods.
    Pin(
        "sglang.srt.lora.layers.get_lora_layer",
        "6b3ab35dd1b22743ab46dd8dafeb2ce819cb9cde8fbcdb22bf49e3bf932855b3",
    ),
]

_FACTORIES = ("tensor", "zeros", "empty")  # the factories SGLang's LoRA code calls with pin_memory=True


@contextmanager
def no_pinning() -> Iterator[None]:
    """`pin_memory=True` is dropped and `Tensor.pin_memory()` returns the tensor, until exit."""
    import torch

    originals = {name: getattr(torch, name) for name in _FACTORIES}
    pin = torch.Tensor.pin_memory

    def unpinned(factory: Any) -> Any:
        def make(*args: Any, pin_memory: bool = False, **kw: Any) -> Any:
            return factory(*args, **kw)

        return make

    for name, factory in originals.items():
        setattr(torch, name, unpinned(factory))
    torch.Tensor.pin_memory = lambda self, *args, **kw: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, factory in originals.items():
            setattr(torch, name, factory)
        torch.Tensor.pin_memory = pin  # type: ignore[method-assign]


def without_pinning(original: Any, *args: Any, **kw: Any) -> Any:
    with no_pinning():
        return original(*args, **kw)


def register() -> None:
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    for target in (SET_LORA_MODULE, UPDATE_LORA_INFO, PREPARE_BATCH):
        HookRegistry.register(target, without_pinning, HookType.AROUND)
