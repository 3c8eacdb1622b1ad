"""SUN training on the tiny model: the hybrid forward, where gradients go, the frozen decode
module, exact resumption, and the exported checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from sun_sglang import tasks
from sun_sglang.compat import check_prefill_module
from sun_sglang.reference import load_model
from sun_sglang.train.config import TrainConfig
from sun_sglang.train.hybrid import Batch, answer_logits, answer_nll
from sun_sglang.train.loop import Trainer, decode_module_unchanged

PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [14, 15, 16, 17]]
ANSWERS = [[20, 21, 22], [23], [24, 25]]


def test_hybrid_forward_with_one_model_is_the_plain_forward(tiny_family: Path) -> None:
    model = load_model(str(tiny_family))
    batch = Batch.build(PROMPTS, ANSWERS, pad_id=0)
    with torch.no_grad():
        hybrid = answer_logits(model, model, batch)
        for row, (prompt, answer) in enumerate(zip(PROMPTS, ANSWERS)):
            plain = model(input_ids=torch.tensor([prompt + answer])).logits[0]
            want = plain[len(prompt) - 1 : len(prompt) - 1 + len(answer)]
            torch.testing.assert_close(hybrid[row, : len(answer)], want, rtol=1e-5, atol=1e-5)


def test_hybrid_forward_uses_the_prefill_kv(tiny_family: Path) -> None:
    """With a different prefill module, answer positions after the first change too: the decode
    module attends to the KV the prefill module wrote."""
    decode = load_model(str(tiny_family))
    prefill = load_model(str(tiny_family))
    with torch.no_grad():
        for p in prefill.model.layers[0].self_attn.k_proj.parameters():
            p.add_(0.5)
    batch = Batch.build(PROMPTS[:1], ANSWERS[:1], pad_id=0)
    with torch.no_grad():
        same = answer_logits(decode, decode, batch)
        mixed = answer_logits(prefill, decode, batch)
    assert not torch.allclose(same[0, 1:], mixed[0, 1:])


def test_gradients_reach_every_prefill_parameter_and_no_decode_parameter(tiny_family: Path) -> None:
    prefill = load_model(str(tiny_family), attention="sdpa").train()
    decode = load_model(str(tiny_family), attention="sdpa").requires_grad_(False)
    batch = Batch.build(PROMPTS, ANSWERS, pad_id=0)
    answer_nll(prefill, decode, batch).backward()
    missing = [n for n, p in prefill.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert all(p.grad is None for p in decode.parameters())


def test_gradients_reach_the_prefill_module_through_the_decode_attention(tiny_base: Path) -> None:
    """Only later answer tokens in the loss (the first is the prefill's own): the prefill module's
    K/V projections still get gradient, through the decode module's attention."""
    prefill = load_model(str(tiny_base), attention="sdpa").train()
    decode = load_model(str(tiny_base), attention="sdpa").requires_grad_(False)
    batch = Batch.build(PROMPTS[:1], ANSWERS[:1], pad_id=0)
    logits = answer_logits(prefill, decode, batch)
    logits[0, 1:].sum().backward()
    for layer in (prefill.model.layers[0], prefill.model.layers[-1]):
        assert layer.self_attn.k_proj.weight.grad.abs().sum() > 0
        assert layer.self_attn.v_proj.weight.grad.abs().sum() > 0
    assert not prefill.model.norm.weight.grad.abs().sum() > 0  # its own logits were not in this loss


def _config(tiny_base: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(base=str(tiny_base), task="bb_2digit_addition", out=str(out), steps=4, batch_size=2)
    return TrainConfig(**{**base, "n_test": 100, "save_every": 2, "warmup_steps": 1, "lr": 1e-3, **kw})


def test_sun_training_changes_the_prefill_module_only(tiny_family: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(tiny_family, tmp_path / "sun"))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run(progress=False)
    assert decode_module_unchanged(trainer.decode, str(tiny_family))
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)
    assert trainer.losses[-1] < trainer.losses[0]


@pytest.mark.parametrize("mode", ["sun", "lora"])
def test_resuming_equals_training_straight_through(tiny_base: Path, tmp_path: Path, mode: str) -> None:
    straight = Trainer(_config(tiny_base, tmp_path / "a", mode=mode))
    straight.run(progress=False)
    first = Trainer(_config(tiny_base, tmp_path / "b", mode=mode))
    while first.step < 2:
        first.train_step()
    first.save_checkpoint()
    resumed = Trainer(_config(tiny_base, tmp_path / "b", mode=mode))
    assert resumed.resume() and resumed.step == 2
    resumed.run(progress=False)
    assert resumed.losses == straight.losses
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_resume_refuses_a_checkpoint_made_with_other_settings(tiny_base: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(tiny_base, tmp_path / "c"))
    trainer.train_step()
    trainer.save_checkpoint()
    with pytest.raises(ValueError, match="lr"):
        Trainer(_config(tiny_base, tmp_path / "c", lr=5e-4)).resume()


def test_export_is_a_plain_checkpoint_that_passes_the_compatibility_check(
    tiny_family: Path, tmp_path: Path
) -> None:
    trainer = Trainer(_config(tiny_family, tmp_path / "exp", steps=2, save_every=1))
    trainer.run(progress=False)
    assert trainer.checkpoint_dir.is_dir()
    out = trainer.export()
    assert not trainer.checkpoint_dir.exists()  # optimizer state is 2x the model: not kept
    loaded = AutoModelForCausalLM.from_pretrained(out)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    check_prefill_module(str(out), str(tiny_family))  # raises IncompatibleCheckpoint on a mismatch
    assert json.loads((out / "sun_train.json").read_text())["steps"] == 2
    assert (out / "chat_template.jinja").read_text() == (tiny_family / "chat_template.jinja").read_text()


def test_task_splits_are_disjoint_and_seeded() -> None:
    examples = tasks.load("rg_spell_backward")
    train, test = tasks.split(examples, seed=3, n_test=100)
    assert len(test) == 100 and len(train) == len(examples) - 100
    assert not {e.chat()[0]["content"] for e in test} & {e.chat()[0]["content"] for e in train}
    assert tasks.split(examples, seed=3, n_test=100)[1] == test
    assert tasks.split(examples, seed=4, n_test=100)[1] != test


def test_jsonl_chats_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "chats.jsonl"
    good.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
        + "\n"
    )
    (example,) = tasks.load(str(good))
    assert example.chat() == [{"role": "user", "content": "hi"}] and example.answer == "yo"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        tasks.load(str(bad))
    with pytest.raises(FileNotFoundError, match="no task"):
        tasks.load("no_such_task")


def test_a_datasets_folder_is_a_task(tmp_path: Path) -> None:
    import datasets

    chats = [
        [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(3)
    ]
    datasets.Dataset.from_dict({"messages": chats}).save_to_disk(str(tmp_path / "chats"))
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"prompt": ["p"], "answer": ["x"]})}
    ).save_to_disk(str(tmp_path / "dict"))
    loaded = tasks.load(str(tmp_path / "chats"))
    assert [(e.chat()[0]["content"], e.answer) for e in loaded] == [("q0", "a0"), ("q1", "a1"), ("q2", "a2")]
    (row,) = tasks.load(str(tmp_path / "dict"))
    assert row.answer == "x"


def test_study_page_reports_every_configuration_and_the_gap() -> None:
    from sun_sglang.eval.study_page import page

    args = _study_args()
    result = _study_result("bb_2digit_addition", full=0.865, naive=0.79, sun=0.875, lora=0.85)
    text = page([result], args, "step table")
    row = next(line for line in text.splitlines() if line.startswith("| bb_2digit_addition"))
    assert "| 0.0 | 86.5 | 79.0 | 87.5 | 85.0 | +1.0 | -1.5 | 180 s / 200 s / 150 s |" in row
    assert "800 / 200" in row and "lr 0.001, rank 16" in text
    assert "--steps 80 --seed 0" in text and "step table" in text


def test_gradient_accumulation_equals_the_larger_batch(tiny_base: Path, tmp_path: Path) -> None:
    """Micro-batches of 1 accumulated twice: the same gradient as one batch of 2 (the loss is the
    mean over all answer tokens of the step either way)."""
    whole = Trainer(_config(tiny_base, tmp_path / "w", batch_size=2, grad_accum=1))
    split = Trainer(_config(tiny_base, tmp_path / "s", batch_size=1, grad_accum=2))
    assert whole.micro_batch(0, 0).prompt_ids.shape[0] == 2
    loss_whole, _ = whole.accumulate()
    loss_split, _ = split.accumulate()
    assert loss_split == pytest.approx(loss_whole, rel=1e-5)
    grads = {n: p.grad for n, p in whole.model.named_parameters()}
    for name, param in split.model.named_parameters():
        torch.testing.assert_close(param.grad, grads[name], rtol=1e-4, atol=1e-6)


def test_study_page_reports_qsun_against_sun_and_no_retraining() -> None:
    from sun_sglang.eval.study_page import page

    args = _study_args()
    result = _study_result("bb_2digit_addition", full=0.865, naive=0.79, sun=0.875, lora=0.85)
    qsun = [
        {
            "task": "bb_2digit_addition",
            "bits": 4,
            "weights": "W4 (GPTQ, group 64)",
            "accuracy": {"no retraining": 0.80, "QSUN": 0.86},
        }
    ]
    decoders = [
        {"task": "bb_2digit_addition", "weights": "W4 (AWQ, group 64)", "accuracy": 0.78, "seconds": 550.0}
    ]
    text = page([result], args, None, qsun, None, decoders)
    row = next(line for line in text.splitlines() if line.startswith("| bb_2digit_addition | W4 (GPTQ"))
    assert "| W4 (GPTQ, group 64) | 87.5 | 80.0 | 86.0 | -1.5 | +6.0 |" in row
    row = next(line for line in text.splitlines() if line.startswith("| bb_2digit_addition | W4 (AWQ"))
    assert row == "| bb_2digit_addition | W4 (AWQ, group 64) | 78.0 | -9.5 | 550 s |"
    assert "--qsun w4-gptq-g64,w8-gptq-g64 --doc" in text


def test_qsun_schemes_are_named_by_bits_method_and_group() -> None:
    from sun_sglang.eval.study_qsun import Scheme

    scheme = Scheme.parse("w4-awq-gptq-g32")
    assert (scheme.bits, scheme.method, scheme.group_size) == (4, "awq-gptq", 32)
    assert scheme.name == "w4-awq-gptq-g32" and scheme.label == "W4 (AWQ scaling + GPTQ, group 32)"
    for bad in ("w4-hqq-g64", "4-gptq-g64", "w4-gptq"):
        with pytest.raises(ValueError, match="QSUN scheme"):
            Scheme.parse(bad)


def test_study_page_reports_the_spread_over_seeds() -> None:
    from sun_sglang.eval.study_page import page

    result = _study_result("rg_family_relationships", full=0.40, naive=0.40, sun=0.36, lora=0.36)
    more = [
        {"task": "rg_family_relationships", "seed": s, "accuracy": {"full FT": f, "naive": 0.30, "SUN": u}}
        for s, f, u in ((1, 0.42, 0.44), (2, 0.38, 0.38))
    ]
    longer = [
        {
            "task": "rg_family_relationships",
            "steps": 240,
            "accuracy": {"full FT": 0.5, "naive": 0.45, "SUN": 0.49},
            "train_seconds": {"full": 900.0, "sun": 950.0},
        }
    ]
    args = _study_args(more_seeds="1,2", longer="rg_family_relationships")
    text = page([result], args, None, None, more, None, longer)
    row = next(line for line in text.splitlines() if line.startswith("| rg_family_relationships | 0, 1, 2"))
    # full FT 40/42/38, SUN 36/44/38: gaps -4, +2, 0 -> mean -0.7, sd 3.1
    assert "| 40.0 ± 2.0 | 33.3 ± 5.8 | 39.3 ± 4.2 | -0.7 ± 3.1 | 0: -4.0, 1: +2.0, 2: +0.0 |" in row
    rows = [line for line in text.splitlines() if line.startswith("| rg_family_relationships | 80 |")]
    assert rows == ["| rg_family_relationships | 80 | 40.0 | 40.0 | 36.0 | -4.0 | 180 s / 200 s |"]
    assert "| rg_family_relationships | 240 | 50.0 | 45.0 | 49.0 | -1.0 | 900 s / 950 s |" in text
    assert "--more-seeds 1,2 --longer rg_family_relationships --longer-steps 240" in text


def _study_result(task: str, full: float, naive: float, sun: float, lora: float) -> dict:
    """One task's row as study_task returns it (800 / 200 examples, 180 / 200 / 150 s of training)."""
    return {
        "task": task,
        "n_train": 800,
        "n_test": 200,
        "accuracy": {"base": 0.0, "full FT": full, "naive": naive, "SUN": sun, "LoRA-SUN": lora},
        "train_seconds": {"full": 180.0, "sun": 200.0, "lora": 150.0},
    }


def _study_args(**overrides: object) -> argparse.Namespace:
    args = dict(steps=80, batch_size=8, lr=1e-4, seed=0, lora_lr=1e-3, lora_rank=16, more_seeds="")
    args.update(qsun="w4-gptq-g64,w8-gptq-g64", qsun_decoders="", longer="", longer_steps=240)
    return argparse.Namespace(**{**args, **overrides})


@pytest.mark.parametrize("mode", ["sun", "lora", "full"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(
    tiny_family: Path, tmp_path: Path, mode: str
) -> None:
    """Recomputing each layer in the backward pass changes nothing: the prefill module's K/V are
    neither appended twice nor dropped (transformers' own checkpointing would drop them)."""
    runs = []
    for checkpointing in (False, True):
        config = _config(
            tiny_family, tmp_path / str(checkpointing), mode=mode, activation_checkpointing=checkpointing
        )
        trainer = Trainer(config)
        loss, _ = trainer.accumulate()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        runs.append((loss, grads, trainer))
    (loss_a, grads_a, _), (loss_b, grads_b, checkpointed) = runs
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    names = {n.replace("_checkpoint_wrapped_module.", "") for n in grads_b}
    assert names == set(grads_a) and grads_a
    for name, grad in grads_b.items():
        torch.testing.assert_close(
            grad, grads_a[name.replace("_checkpoint_wrapped_module.", "")], rtol=1e-5, atol=1e-7
        )
    out = checkpointed.export()  # the plain checkpoint's names, not the wrapper's
    assert "_checkpoint_wrapped_module" not in json.dumps(sorted(weights_names(out)))


def weights_names(folder: Path) -> list[str]:
    from safetensors import safe_open

    name = (
        "adapter_model.safetensors"
        if (folder / "adapter_model.safetensors").is_file()
        else "model.safetensors"
    )
    with safe_open(folder / name, "pt") as f:
        return list(f.keys())


def test_yaml_config_with_overrides_and_reports(tiny_base: Path, tmp_path: Path) -> None:
    """`--config` settings, command-line flags over them, and what rank 0 reports per step."""
    from sun_sglang.train.__main__ import main, parse

    run = tmp_path / "run.yaml"
    out = tmp_path / "out"
    run.write_text(
        f"base: {tiny_base}\ntask: bb_2digit_addition\nout: {out}\nsteps: 9\nbatch_size: 2\nn_test: 100\n"
        "report_to: [jsonl, tensorboard]\nlr: 0.001\n"
    )
    config, resume, _ = parse(["--config", str(run), "--steps", "2", "--resume"])
    assert (config.steps, config.batch_size, config.lr, resume) == (2, 2, 0.001, True)  # the flag wins
    main(["--config", str(run), "--steps", "2"])
    lines = [json.loads(x) for x in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2] and all(x["loss"] > 0 and x["examples"] == 2 for x in lines)
    assert list((out / "logs").glob("events.out.tfevents.*"))  # TensorBoard's
    run.write_text(run.read_text() + "learning_rate: 1\n")
    with pytest.raises(SystemExit, match="unknown settings \\['learning_rate'\\]"):
        parse(["--config", str(run)])


def test_the_memory_model_per_rank() -> None:
    from sun_sglang.bench.train_memory import GIB, Setup, state_gib

    p = 8.03e9  # Llama-3.1-8B under bf16-mixed on 8 GPUs
    sun = state_gib(Setup(p, "sun", ranks=8, decode_bytes=2))
    assert sun["train_state"] == pytest.approx(p * 16 / 8 / GIB) and sun["frozen"] == pytest.approx(
        p * 2 / GIB
    )
    sharded = state_gib(Setup(p, "sun", ranks=8, decode_sharding="shard", decode_bytes=2))
    assert sharded["frozen"] == pytest.approx(sun["frozen"] / 8)
    assert state_gib(Setup(p, "full", ranks=8))["frozen"] == 0  # the trained model decodes itself
    lora = state_gib(Setup(p, "lora", ranks=8, decode_bytes=2, lora_params=42e6))
    assert lora["train_state"] < 0.1 and lora["frozen"] > sun["frozen"]  # the base under the adapter too
