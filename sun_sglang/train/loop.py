"""Training a prefill module (mode "sun": the decode module is the frozen base; mode "lora": the
same, the prefill module a LoRA adapter on the base) or a whole task model (mode "full": the same
model is prefill and decode, i.e. plain fine-tuning), with gradient accumulation, warm-up then
linear decay, checkpoints and exact resumption."""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoTokenizer

from sun_sglang import adapters, tasks
from sun_sglang.reference import load_model
from sun_sglang.train import checkpoints
from sun_sglang.train.checkpoints import decode_module_unchanged
from sun_sglang.train.config import TrainConfig
from sun_sglang.train.distributed import (
    ONE_PROCESS,
    World,
    checkpoint_layers,
    full_state_dict,
    local_numel,
    shard,
)
from sun_sglang.train.hybrid import Batch, answer_nll
from sun_sglang.train.report import Reporter, reset_peak_rss, vm_gib


class Trainer:
    """One training run, in this process or as one rank of a sharded (FSDP2) run: every rank
    builds the same model, then `shard` splits it; batches are the global batch's rank slice."""

    def __init__(self, config: TrainConfig, world: World = ONE_PROCESS) -> None:
        self.config, self.world = config, world
        torch.manual_seed(config.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(config.base)
        self.model = load_model(config.base, config.dtype, "sdpa").train()
        if config.decode is not None and not config.frozen_decode:
            raise ValueError("--decode names a frozen decode module: modes sun and lora only")
        if config.mode == "lora":
            self.model = adapters.wrap(self.model, config.lora_rank, config.lora_alpha, config.lora_targets)
        if config.activation_checkpointing:
            checkpoint_layers(self.model)
        if config.precision == "bf16-mixed" and config.dtype != "float32":
            raise ValueError("precision bf16-mixed keeps float32 weights: use it with dtype float32")
        compute = torch.bfloat16 if config.precision == "bf16-mixed" else None
        if world.sharded:
            self.model = shard(self.model.to(world.device), world, compute)
        if config.frozen_decode:
            self.decode = load_model(config.decode_path, config.decode_dtype, "sdpa").requires_grad_(False)
            self.decode = self.decode.to(world.device)
            if config.activation_checkpointing:
                checkpoint_layers(self.decode)
            if world.sharded and config.decode_sharding == "shard":
                self.decode = shard(self.decode, world, compute)
        else:
            self.decode = self.model
        train, _ = tasks.train_test(config.task, config.seed, config.n_test)
        self.train_set = [
            (tasks.prompt_ids(self.tokenizer, ex), tasks.answer_ids(self.tokenizer, ex)) for ex in train
        ]
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.step = 0
        self.losses: list[float] = []
        self._orders: dict[int, list[int]] = {}

    def lr_factor(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        return max(0.0, (c.steps - step) / max(1, c.steps - c.warmup_steps))

    def micro_batch(self, step: int, micro: int) -> Batch:
        """This rank's examples of one micro-batch, a pure function of (seed, step, rank): resuming
        replays the same order, and N ranks of batch_size B see what one process of N * B sees."""
        size, n = self.config.batch_size, len(self.train_set)
        first = ((step * self.config.grad_accum + micro) * self.world.size + self.world.rank) * size
        rows = []
        for index in range(first, first + size):
            epoch, offset = divmod(index, n)
            rows.append(self.train_set[self._order(epoch)[offset]])
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return Batch.build([p for p, _ in rows], [a for _, a in rows], pad)

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.train_set)))
            random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
            self._orders[epoch] = order
        return self._orders[epoch]

    def accumulate(self) -> tuple[float, int]:
        """Gradients of this step's mean answer-token loss over every micro-batch of every rank;
        (that loss, this rank's tokens). FSDP averages gradients over ranks: each rank's share is
        scaled by the rank count, so the sum is over the global batch's answer tokens."""
        batches = [self.micro_batch(self.step, m) for m in range(self.config.grad_accum)]
        world = self.world
        answer_tokens = world.sum(sum(b.answer_tokens for b in batches))
        always = world.sharded and (self.config.decode_sharding == "shard" or not self.config.frozen_decode)
        mine = 0.0
        for batch in batches:
            with self._autocast():
                nll = answer_nll(self.model, self.decode, batch, always_decode=always) / answer_tokens
            (nll * world.size).backward()
            mine += float(nll.detach())
        return world.sum(mine), sum(b.tokens for b in batches)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16-mixed in one process: autocast (sharded, FSDP2 casts the parameters itself)."""
        if self.config.precision == "bf16-mixed" and not self.world.sharded:
            return torch.autocast(self.world.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self) -> tuple[float, int]:
        """One optimizer step; (mean answer-token loss, tokens processed)."""
        total, tokens = self.accumulate()
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.losses.append(total)
        return total, tokens

    def run(self, progress: bool = True) -> None:
        """Steps to the end, checkpoints on the way; the console bar and the report from rank 0:
        loss, learning rate, this rank's tokens/s, the effective batch."""
        c, world = self.config, self.world
        name = f"{c.mode}:{Path(c.task).stem}"
        effective = c.examples_per_step(world.size)
        if progress and world.main:
            shape = f"{world.size} ranks x batch {c.batch_size} x accumulation {c.grad_accum}"
            print(f"{name}: {shape} = {effective} examples per step")
        bar = tqdm(total=c.steps, initial=self.step, disable=not (progress and world.main), desc=name)
        report = Reporter(c.report_to, Path(c.out) / "logs", enabled=world.main)
        try:
            while self.step < c.steps:
                t0 = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                loss, tokens = self.train_step()
                rate = tokens / (time.perf_counter() - t0)  # this rank's
                bar.set_postfix(loss=f"{loss:.3f}", tok_s_rank=f"{rate:.0f}")
                bar.update(1)
                report.step(self.step, loss=loss, lr=lr, tokens_per_s_rank=rate, examples=effective)
                if self.step % c.save_every == 0 and self.step < c.steps:
                    self.save_checkpoint()
        finally:
            bar.close()
            report.close()

    # -- checkpoints: OUT/checkpoint, the export: OUT (sun_sglang/train/checkpoints.py) --
    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.config.out) / "checkpoint"

    def save_checkpoint(self) -> None:
        checkpoints.save(self)

    def resume(self) -> bool:
        return checkpoints.resume(self)

    def export(self, extra: dict | None = None, keep_checkpoint: bool = False) -> Path:
        return checkpoints.export(self, extra, keep_checkpoint)


def train_and_export(
    config: TrainConfig,
    resume: bool = False,
    keep_checkpoint: bool = False,
    progress: bool = True,
    world: World = ONE_PROCESS,
) -> Trainer:
    """Train (continuing from OUT/checkpoint if `resume`), check that a SUN run left the decode
    module untouched, and export with the run's time and peak memory in sun_train.json."""
    trainer = Trainer(config, world)
    loaded = [round(p, 3) for p in world.gather(vm_gib("VmHWM"))]
    reset_peak_rss()
    progress = progress and world.main
    if resume and trainer.resume() and progress:
        print(f"resumed at step {trainer.step} from {trainer.checkpoint_dir}")
    start = time.perf_counter()
    trainer.run(progress)
    seconds = round(time.perf_counter() - start, 1)
    if config.frozen_decode:
        sharded = world.sharded and config.decode_sharding == "shard"
        state = full_state_dict(trainer.decode, world) if sharded else None  # every rank takes part
        same = not world.main or decode_module_unchanged(
            trainer.decode, config.decode_path, config.decode_dtype, state
        )
        if world.sum(0 if same else 1):
            raise RuntimeError("the decode module changed during training: refusing to export")
    peaks = [round(p, 3) for p in world.gather(vm_gib("VmHWM"))]  # training's, loading's before
    record = {
        "train_seconds": seconds,
        "peak_rss_gib": max(peaks),
        "peak_rss_gib_per_rank": peaks,
        "load_peak_rss_gib_per_rank": loaded,
        # the trained parameters each rank holds (its shards): the proof that it is sharded
        "trained_params_per_rank": world.gather(local_numel(trainer.model)),
    }
    trainer.export(record, keep_checkpoint=keep_checkpoint)
    return trainer
