"""LoRA prefill modules on the tiny model: training one with the SUN loss, its export, the
compatibility check, the offline reference, and the cluster plan of a multi-LoRA prefill pool."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import torch

from sun_sglang import adapters, compat
from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.plan import plan
from sun_sglang.reference import SunReference, load_model, sun_generate
from sun_sglang.train.config import TrainConfig
from sun_sglang.train.hybrid import Batch, answer_nll
from sun_sglang.train.loop import Trainer, decode_module_unchanged, train_and_export

PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]


def _config(base: Path, out: Path, **kw: object) -> TrainConfig:
    settings = {"base": str(base), "task": "bb_2digit_addition", "out": str(out), "mode": "lora"}
    return TrainConfig(**{**settings, "steps": 2, "batch_size": 4, "n_test": 100, "lr": 1e-3, **kw})


def test_gradients_reach_every_adapter_weight_and_nothing_else(tiny_base: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(tiny_base, tmp_path, lora_rank=4))
    with torch.no_grad():  # B starts at 0, which would stop A's gradient: make it nonzero
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.01)
    answer_nll(trainer.model, trainer.decode, Batch.build(PROMPTS, [[20, 21], [22]], 0)).backward()
    trainable = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * 7 * 2  # A and B, 7 linear layers, 2 layers
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.values())
    frozen = [p for p in trainer.model.parameters() if not p.requires_grad]
    assert all(p.grad is None for p in frozen)
    assert all(p.grad is None for p in trainer.decode.parameters())


def test_lora_training_exports_an_adapter_and_leaves_both_bases_untouched(
    tiny_base: Path, tmp_path: Path
) -> None:
    trainer = train_and_export(_config(tiny_base, tmp_path / "out", lora_rank=4, steps=3), progress=False)
    assert decode_module_unchanged(trainer.decode, str(tiny_base))
    info = adapters.read(tmp_path / "out")
    assert info.rank == 4 and info.targets == tuple(sorted(adapters.ALL_LINEAR))
    compat.check_adapter(tmp_path / "out", tiny_base, max_rank=4, served_targets=adapters.ALL_LINEAR)
    assert json.loads((tmp_path / "out" / "sun_train.json").read_text())["steps"] == 3
    # the adapter moved: merged, it changes the prefill module's logits
    base = load_model(str(tiny_base))
    prefill = adapters.merged(base, tmp_path / "out")
    ids = torch.tensor([PROMPTS[0]])
    assert not torch.allclose(prefill(ids).logits, base(ids).logits)


def test_the_reference_runs_an_adapter_merged_into_the_base(
    tiny_base: Path, tiny_adapters: list[Path]
) -> None:
    from peft import PeftModel

    ref = SunReference.load(str(tiny_adapters[0]), str(tiny_base))
    unmerged = PeftModel.from_pretrained(load_model(str(tiny_base)), str(tiny_adapters[0])).eval()
    ids = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        torch.testing.assert_close(ref.prefill(ids).logits, unmerged(ids).logits, rtol=1e-4, atol=1e-4)
    base = load_model(str(tiny_base))
    assert all(
        torch.equal(a, b) for a, b in zip(ref.decode.state_dict().values(), base.state_dict().values())
    )
    plain = sun_generate(base, base, PROMPTS, 8)
    assert ref.generate(PROMPTS, 8) != plain  # the adapter changes the answer


@pytest.mark.parametrize(
    "limits, message",
    [
        ({"max_rank": 2}, "rank 4 > the prefill servers' max_lora_rank 2"),
        ({"served_targets": ["q_proj", "v_proj"]}, "not among the servers'"),
    ],
)
def test_adapter_check_refuses_what_the_servers_cannot_hold(
    tiny_base: Path, tiny_adapters: list[Path], limits: dict, message: str
) -> None:
    with pytest.raises(compat.IncompatibleCheckpoint, match=message):
        compat.check_adapter(tiny_adapters[0], tiny_base, **limits)


def test_adapter_check_refuses_another_base_and_non_adapters(
    tiny_base: Path, tiny_adapters: list[Path], smollm2: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        compat.IncompatibleCheckpoint, match=r"down_proj.lora_A.weight: shape \[4, 128\].*needs \[4, 1536\]"
    ):
        compat.check_adapter(tiny_adapters[0], smollm2)
    with pytest.raises(compat.IncompatibleCheckpoint, match="not a peft adapter"):
        compat.check_adapter(tiny_base, tiny_base)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(compat.IncompatibleCheckpoint, match="not LORA"):
        compat.check_adapter(tmp_path, tiny_base)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(body)
    return path


def test_plan_of_a_multi_lora_pool(
    tmp_path: Path, tiny_base: Path, tiny_task: Path, tiny_adapters: list[Path]
) -> None:
    body = f"""
base: {tiny_base}
prefill_pools: {{lora: {{replicas: 2, max_lora_rank: 8, max_loras_per_batch: 4}}}}
tasks:
  a: {{adapter: {tiny_adapters[0]}, pool: lora}}
  b: {{adapter: {tiny_adapters[1]}, pool: lora}}
  full: {{model_path: {tiny_task}}}
"""
    cfg = cluster_config.load(_write(tmp_path, body))
    assert cfg.server_count == 2 + 1 + 1  # pool replicas, the full-copy task, one decode server
    cluster = plan(cfg, "cpu")
    pool = [s for s in cluster.servers if s.name.startswith("prefill-pool-lora")]
    assert len(pool) == 2 and all(s.model_path == str(tiny_base) for s in pool)
    argv = pool[0].argv()
    assert argv[argv.index("--lora-paths") + 1 :][:2] == [f"a={tiny_adapters[0]}", f"b={tiny_adapters[1]}"]
    assert argv[argv.index("--lora-backend") + 1] == "torch_native"  # the backend that runs on CPU
    assert argv[argv.index("--max-lora-rank") + 1] == "8" and "--enable-lora" in argv
    decode_argv = cluster.decode[0].argv()
    assert not any("lora" in a for a in decode_argv)  # decode servers run the plain base
    routes = cluster.gateway.tasks
    assert routes["a"].pool == "lora" and routes["a"].adapter == "a" and routes["a"].prefill == []
    assert routes["full"].adapter is None and len(routes["full"].prefill) == 1
    assert [w.url for w in cluster.gateway.prefill_pools["lora"]] == [s.url for s in pool]
    gpu_argv = next(s for s in plan(cfg, "cuda").servers if s.lora).argv()
    assert "--enable-lora" in gpu_argv and "--lora-backend" not in gpu_argv  # SGLang's default on GPU


def test_plan_refuses_an_adapter_the_pool_cannot_hold(
    tmp_path: Path, tiny_base: Path, tiny_adapters: list[Path]
) -> None:
    body = f"""
base: {tiny_base}
prefill_pools: {{lora: {{max_lora_rank: 2}}}}
tasks: {{a: {{adapter: {tiny_adapters[0]}, pool: lora}}}}
"""
    with pytest.raises(
        compat.IncompatibleCheckpoint, match="task 'a'.*rank 4 > the prefill servers' max_lora_rank 2"
    ):
        plan(cluster_config.load(_write(tmp_path, body)), "cpu")


@pytest.mark.parametrize(
    "tasks, extra, message",
    [
        ("{a: {adapter: x}}", "", "an adapter needs pool"),
        ("{a: {adapter: x, pool: nope}}", "prefill_pools: {lora: {}}\n", "an adapter needs pool"),
        ("{a: {adapter: x, model_path: y, pool: lora}}", "prefill_pools: {lora: {}}\n", "not both"),
        ("{a: {model_path: y, pool: lora}}", "prefill_pools: {lora: {}}\n", "not a pool"),
        ("{a: {adapter: x, pool: lora}}", "prefill_pools: {lora: {}}\nmode: conventional\n", "need mode sun"),
        ("{a: {model_path: y}}", "prefill_pools: {lora: {replicas: 0}}\n", "prefill pool 'lora'"),
    ],
)
def test_bad_adapter_cluster_files_are_refused(tmp_path: Path, tasks: str, extra: str, message: str) -> None:
    with pytest.raises((ValueError, msgspec.ValidationError), match=message):
        cluster_config.load(_write(tmp_path, f"base: x\ntasks: {tasks}\n{extra}"))


def test_lora_scale_clusters_and_report(tiny_base: Path, tiny_adapters: list[Path]) -> None:
    from sun_sglang.bench import lora_scale
    from sun_sglang.launch.config import CpuPins

    pins = CpuPins(prefill="0", decode="1", gateway="0")
    cfg = lora_scale.lora_cluster(tiny_base, tiny_adapters, 4, pins, 36000)
    cluster = plan(cfg, "cpu")
    assert [s.name for s in cluster.servers] == ["decode-0", "prefill-pool-lora-0"]
    assert cluster.servers[1].argv()[:3] == ["taskset", "-c", "0"]
    assert sorted(cluster.gateway.tasks) == ["task00", "task01"]
    case = {
        "tasks": 16,
        "prefill_servers": 1,
        "prefill_rss_mib": 3200.0,
        "prefill_rss_mib_per_task": 200.0,
        "summary": {
            "req_s": 1.5,
            "output_tok_s": 24.0,
            "errors": 0,
            "ttft_s": {"p50": 1.0, "p90": 2.0},
            "tpot_s": {"p50": 0.1},
        },
    }
    result = {
        "cases": [{**case, "case": "lora-16"}, {**case, "case": "lora-4", "tasks": 4}],
        "adapter": {"rank": 16, "file_mib": 18.6},
        "memory": {
            "machine_mib": 24000,
            "full_copy_server_mib": 3000.0,
            "full_copies_that_fit": 8,
            "rss_mib_per_extra_adapter": 20.0,
        },
    }
    text = lora_scale.report(result)
    assert "| lora-16 | 16 | 1 | 1.50 | 24.0 | 1.00 / 2.00 | 0.100 | 0 | 3200 | 200 |" in text
    assert "beyond the first 4 added 20.0 MiB" in text and "8 would fill" in text
