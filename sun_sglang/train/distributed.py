"""Training across processes with PyTorch's FSDP2 (`fully_shard`), launched by torchrun: the
process group, the sharding of a model (each decoder layer its own unit, then the root), global
token counts, and a model's whole state dict gathered for export.

One process (no torchrun) is the same code with world size 1 and nothing sharded. On CPU the
backend is gloo: the sharded path that GPU users run with NCCL is tested on these machines
(shared/TRAINING_AT_SCALE.md)."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def sharded(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, value: int | float) -> float:
        """The value summed over every process (itself, in one process)."""
        if not self.sharded:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())

    def gather(self, value: float) -> list[float]:
        """Every process's value, in rank order."""
        if not self.sharded:
            return [value]
        out: list[float] = [0.0] * self.size
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if self.sharded:
            dist.barrier()


ONE_PROCESS = World()


def join() -> World:
    """This process's place: from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), else one
    process. Starts the process group (NCCL on CUDA, gloo on CPU) when there are several."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return ONE_PROCESS
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), device)


def leave(world: World) -> None:
    if world.sharded and dist.is_initialized():
        dist.barrier()
        gc.collect()  # what still refers to the group (a dropped model's FSDP state) goes first
        dist.destroy_process_group()


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's stack of decoder layers (a peft-wrapped model's too)."""
    for name, module in model.named_modules():
        if name.split(".")[-1] == "layers" and isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"{type(model).__name__}: no decoder layer list found to shard")


def checkpoint_layers(model: nn.Module) -> nn.Module:
    """Activation checkpointing, as SUN's hand-off needs it: torch's non-reentrant checkpoint
    around each decoder layer (reentrant checkpointing drops the prefill module's gradient), with
    the caches of train/kv_cache.py (a recompute must not append K/V twice). Not transformers'
    gradient_checkpointing_enable: its layers drop the cache, and the decode module would read
    the answer without the prompt (a wrong loss, with only a warning). Apply before `shard`."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    layers = decoder_layers(model)
    for i, layer in enumerate(layers):
        layers[i] = checkpoint_wrapper(layer, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
    return model


def shard(model: nn.Module, world: World, param_dtype: torch.dtype | None = None) -> nn.Module:
    """FSDP2 over `world`: one unit per decoder layer, the rest (embeddings, norm, head; a tied
    head with its embedding) in the root unit. Parameters stay as loaded (fp32 master weights);
    `param_dtype` (bf16) is what the layers compute in, gradients are reduced in fp32."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(world.device.type, (world.size,))
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def local_numel(model: nn.Module) -> int:
    """The trainable parameters this process holds: its shards of a sharded model."""
    total = 0
    for p in model.parameters():
        if p.requires_grad:
            total += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
    return total


def full_state_dict(model: nn.Module, world: World) -> dict[str, torch.Tensor]:
    """The whole, unsharded state dict on CPU (every process takes part; use it on rank 0)."""
    if not world.sharded:
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
