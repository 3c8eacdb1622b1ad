"""Training a prefill module (mode "sun": the decode module is the frozen base; mode "lora": the
same, the prefill module a LoRA adapter on the base) or a whole task model (mode "full": the same
model is prefill and decode, i.e. plain fine-tuning), with gradient accumulation, warm-up then
linear decay, checkpoints and exact resumption."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Literal

import msgspec
import torch
from tqdm import tqdm
from transformers import AutoTokenizer, PreTrainedModel

from sun_sglang import adapters, tasks
from sun_sglang.reference import load_model
from sun_sglang.train.hybrid import Batch, answer_nll

Mode = Literal["sun", "full", "lora"]
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


class TrainConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base: str  # the base checkpoint: the frozen decode module, and where training starts
    task: str  # a built-in task or a JSONL file
    out: str
    mode: Mode = "sun"
    steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_steps: int = 5
    weight_decay: float = 0.0
    seed: int = 0
    n_test: int = 200  # held out for evaluation; never trained on
    save_every: int = 25
    dtype: str = "float32"
    lora_rank: int = 16  # mode lora only
    lora_alpha: float = 32.0
    lora_targets: tuple[str, ...] = adapters.ALL_LINEAR
    # the frozen decode module, if not the base: QSUN trains against the quantized base (its
    # dequantized checkpoint, numerically what the low-bit decode servers compute)
    decode: str | None = None

    @property
    def decode_path(self) -> str:
        return self.decode or self.base

    @property
    def frozen_decode(self) -> bool:
        """The decode module is the untouched base (sun, lora), not the trained model (full)."""
        return self.mode != "full"

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        torch.manual_seed(config.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(config.base)
        self.model = load_model(config.base, config.dtype, "sdpa").train()
        if config.decode is not None and not config.frozen_decode:
            raise ValueError("--decode names a frozen decode module: modes sun and lora only")
        if config.mode == "lora":
            self.model = adapters.wrap(self.model, config.lora_rank, config.lora_alpha, config.lora_targets)
        if config.frozen_decode:
            self.decode = load_model(config.decode_path, config.dtype, "sdpa").requires_grad_(False)
        else:
            self.decode = self.model
        train, _ = tasks.split(tasks.load(config.task), config.seed, config.n_test)
        self.train_set = [
            (tasks.prompt_ids(self.tokenizer, ex), tasks.answer_ids(self.tokenizer, ex)) for ex in train
        ]
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self.losses: list[float] = []
        self._orders: dict[int, list[int]] = {}

    def _lr_factor(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        return max(0.0, (c.steps - step) / max(1, c.steps - c.warmup_steps))

    def micro_batch(self, step: int, micro: int) -> Batch:
        """The examples of one micro-batch, a pure function of (seed, step): resuming replays the
        same order."""
        size, n = self.config.batch_size, len(self.train_set)
        first = (step * self.config.grad_accum + micro) * size
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
        """Gradients of this step's mean answer-token loss, over its micro-batches; (loss, tokens)."""
        batches = [self.micro_batch(self.step, m) for m in range(self.config.grad_accum)]
        answer_tokens = sum(b.answer_tokens for b in batches)
        total = 0.0
        for batch in batches:
            loss = answer_nll(self.model, self.decode, batch) / answer_tokens
            loss.backward()
            total += float(loss.detach())
        return total, sum(b.tokens for b in batches)

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
        c = self.config
        name = f"{c.mode}:{Path(c.task).stem}"
        bar = tqdm(total=c.steps, initial=self.step, disable=not progress, desc=name)
        while self.step < c.steps:
            t0 = time.perf_counter()
            loss, tokens = self.train_step()
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens / (time.perf_counter() - t0):.0f}")
            bar.update(1)
            if self.step % c.save_every == 0 and self.step < c.steps:
                self.save_checkpoint()
        bar.close()

    # -- checkpoints: out/checkpoint/{model/, optimizer.pt, trainer.json}; export: out/ --
    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.config.out) / "checkpoint"

    def save_checkpoint(self) -> None:
        tmp = self.checkpoint_dir.with_name("checkpoint.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp / "model")
        optimizer = {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict()}
        torch.save(optimizer, tmp / "optimizer.pt")
        state = {"step": self.step, "losses": self.losses, "config": msgspec.to_builtins(self.config)}
        (tmp / "trainer.json").write_text(json.dumps(state))
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        tmp.rename(self.checkpoint_dir)  # a crash mid-save leaves the previous checkpoint whole

    def resume(self) -> bool:
        """Continue from out/checkpoint if there is one; its config must match (steps may grow)."""
        state_file = self.checkpoint_dir / "trainer.json"
        if not state_file.is_file():
            return False
        state = json.loads(state_file.read_text())
        saved = {k: v for k, v in state["config"].items() if k != "steps"}
        mine = {k: v for k, v in json.loads(msgspec.json.encode(self.config)).items() if k != "steps"}
        if saved != mine:
            diff = {k: (saved.get(k), mine.get(k)) for k in mine if saved.get(k) != mine.get(k)}
            raise ValueError(f"checkpoint in {self.checkpoint_dir} was made with other settings: {diff}")
        if self.config.mode == "lora":
            adapters.load_weights(self.model, self.checkpoint_dir / "model")
        else:
            weights = load_model(str(self.checkpoint_dir / "model"), self.config.dtype)
            self.model.load_state_dict(weights.state_dict())
        saved_opt = torch.load(self.checkpoint_dir / "optimizer.pt", weights_only=True)
        self.optimizer.load_state_dict(saved_opt["optimizer"])
        self.schedule.load_state_dict(saved_opt["schedule"])
        self.step, self.losses = state["step"], state["losses"]
        return True

    def export(self, extra: dict | None = None, keep_checkpoint: bool = False) -> Path:
        """A plain transformers checkpoint with the base's tokenizer, chat template and generation
        config: what an SGLang prefill server loads unchanged (mode lora: a peft adapter folder,
        what SGLang's multi-LoRA loads). The training checkpoint (weights and optimizer state,
        3x the model) goes unless kept."""
        out = Path(self.config.out)
        if not keep_checkpoint:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        self.model.save_pretrained(out)
        base = Path(self.config.base)
        for name in (*_TOKENIZER_FILES, "generation_config.json"):
            if (base / name).is_file():
                shutil.copy2(base / name, out / name)
        record = {"config": msgspec.to_builtins(self.config), "steps": self.step, "losses": self.losses}
        (out / "sun_train.json").write_text(json.dumps({**record, **(extra or {})}, indent=1))
        return out


def vm_gib(field: str) -> float:
    """VmHWM (peak) or VmRSS of this process, GiB. Not ru_maxrss: Linux carries that across
    fork and exec, so a child would report its parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError(f"{field} not in /proc/self/status")


def train_and_export(
    config: TrainConfig, resume: bool = False, keep_checkpoint: bool = False, progress: bool = True
) -> Trainer:
    """Train (continuing from OUT/checkpoint if `resume`), check that a SUN run left the decode
    module untouched, and export with the run's time and peak memory in sun_train.json."""
    trainer = Trainer(config)
    if resume and trainer.resume() and progress:
        print(f"resumed at step {trainer.step} from {trainer.checkpoint_dir}")
    start = time.perf_counter()
    trainer.run(progress)
    seconds = round(time.perf_counter() - start, 1)
    if config.frozen_decode and not decode_module_unchanged(trainer.decode, config.decode_path, config.dtype):
        raise RuntimeError("the decode module changed during training: refusing to export")
    record = {"train_seconds": seconds, "peak_rss_gib": round(vm_gib("VmHWM"), 2)}
    trainer.export(record, keep_checkpoint=keep_checkpoint)
    return trainer


def decode_module_unchanged(decode: PreTrainedModel, base_path: str, dtype: str = "float32") -> bool:
    """True when the decode module's weights are bit-identical to the base checkpoint's."""
    base = load_model(base_path, dtype).state_dict()
    mine = decode.state_dict()
    return mine.keys() == base.keys() and all(torch.equal(mine[k], base[k]) for k in base)
