"""A training run's checkpoint (OUT/checkpoint) and its export (OUT).

One process: the model as a plain folder, the optimizer state in optimizer.pt. Sharded (FSDP2):
each process writes its shards with torch.distributed.checkpoint (OUT/checkpoint/dcp), resumable
on the same process count. Either way trainer.json holds the step, the losses, the learning-rate
schedule and the settings, and the folder is swapped in whole (a crash mid-save leaves the
previous one). The export is the same plain transformers checkpoint (mode lora: a peft adapter
folder) whatever the sharding: the state gathered on rank 0, written into a model built there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import torch

from sun_sglang import adapters
from sun_sglang.reference import load_model
from sun_sglang.train.distributed import full_state_dict

if TYPE_CHECKING:
    from sun_sglang.train.loop import Trainer

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


def save(trainer: Trainer) -> None:
    world, folder = trainer.world, trainer.checkpoint_dir
    tmp = folder.with_name("checkpoint.tmp")
    if world.main:
        shutil.rmtree(tmp, ignore_errors=True)
    world.barrier()
    if world.sharded:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optim_state = get_state_dict(trainer.model, trainer.optimizer)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp / "dcp"))
    elif world.main:
        trainer.model.save_pretrained(tmp / "model")
        torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
    if world.main:
        state = {
            "step": trainer.step,
            "losses": trainer.losses,
            "world_size": world.size,
            "schedule": trainer.schedule.state_dict(),
            "config": msgspec.to_builtins(trainer.config),
        }
        (tmp / "trainer.json").write_text(json.dumps(state))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    world.barrier()


def resume(trainer: Trainer) -> bool:
    """Continue from OUT/checkpoint if there is one: its settings must match (steps may grow), and
    a sharded one needs the process count it was written with."""
    folder = trainer.checkpoint_dir
    state_file = folder / "trainer.json"
    if not state_file.is_file():
        return False
    state = json.loads(state_file.read_text())
    saved = {k: v for k, v in state["config"].items() if k != "steps"}
    mine = {k: v for k, v in json.loads(msgspec.json.encode(trainer.config)).items() if k != "steps"}
    if saved != mine:
        diff = {k: (saved.get(k), mine.get(k)) for k in mine if saved.get(k) != mine.get(k)}
        raise ValueError(f"checkpoint in {folder} was made with other settings: {diff}")
    world = trainer.world
    if state.get("world_size", 1) != world.size:
        raise ValueError(
            f"checkpoint in {folder} was written by {state.get('world_size', 1)} processes; this run has"
            f" {world.size} (a sharded checkpoint resumes on the same count)"
        )
    if world.sharded:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_state, optim_state = get_state_dict(trainer.model, trainer.optimizer)
        loaded = {"model": model_state, "optim": optim_state}
        dcp.load(loaded, checkpoint_id=str(folder / "dcp"))
        set_state_dict(
            trainer.model,
            trainer.optimizer,
            model_state_dict=loaded["model"],
            optim_state_dict=loaded["optim"],
        )
    else:
        if trainer.config.mode == "lora":
            adapters.load_weights(trainer.model, folder / "model")
        else:
            weights = load_model(str(folder / "model"), trainer.config.dtype)
            trainer.model.load_state_dict(weights.state_dict())
        trainer.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    trainer.schedule.load_state_dict(state["schedule"])
    trainer.step, trainer.losses = state["step"], state["losses"]
    # The learning rate of this step by this run's schedule: a run resumed with more steps decays
    # over its new length (the saved rate followed the old one).
    for group, base_lr in zip(trainer.optimizer.param_groups, trainer.schedule.base_lrs):
        group["lr"] = base_lr * trainer.lr_factor(trainer.step)
    return True


def export(trainer: Trainer, extra: dict | None = None, keep_checkpoint: bool = False) -> Path:
    """A plain transformers checkpoint with the base's tokenizer, chat template and generation
    config: what an SGLang prefill server loads unchanged (mode lora: a peft adapter folder, what
    SGLang's multi-LoRA loads). The training checkpoint (weights and optimizer state, 3x the
    model) goes unless kept."""
    config, world = trainer.config, trainer.world
    out = Path(config.out)
    state = full_state_dict(trainer.model, world) if world.sharded else None
    if world.main:
        if not keep_checkpoint:
            shutil.rmtree(trainer.checkpoint_dir, ignore_errors=True)
        model = trainer.model if state is None else _unsharded(trainer, state)
        model.save_pretrained(out)
        base = Path(config.base)
        for name in (*TOKENIZER_FILES, "generation_config.json"):
            if (base / name).is_file():
                shutil.copy2(base / name, out / name)
        record = {"config": msgspec.to_builtins(config), "steps": trainer.step, "losses": trainer.losses}
        (out / "sun_train.json").write_text(json.dumps({**record, **(extra or {})}, indent=1))
    world.barrier()
    return out


def _unsharded(trainer: Trainer, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The trained model rebuilt in this process from the gathered state."""
    c = trainer.config
    model = load_model(c.base, c.dtype, "sdpa")
    if c.mode == "lora":
        model = adapters.wrap(model, c.lora_rank, c.lora_alpha, c.lora_targets)
    model.load_state_dict(state)
    return model


def decode_module_unchanged(
    decode: torch.nn.Module, base_path: str, dtype: str = "float32", state: dict | None = None
) -> bool:
    """True when the decode module's weights (or `state`, its gathered shards) are bit-identical
    to the base checkpoint's."""
    base = load_model(base_path, dtype).state_dict()
    mine = decode.state_dict() if state is None else state
    return mine.keys() == base.keys() and all(torch.equal(mine[k], base[k]) for k in base)
