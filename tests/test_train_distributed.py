"""Sharded SUN training (FSDP2 under torchrun, two processes, gloo on CPU) against one process:
the same examples per step (2 ranks x batch 2 = 1 process x batch 4) give the same losses and the
same exported weights, in modes sun, lora and full, and with activation checkpointing and a
sharded decode module; the decode module stays bit-identical (the export refuses otherwise); a
sharded run killed after a checkpoint resumes, on the same process count, as the straight run;
a rank whose answers are all one token long does not stall the others."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sun_sglang import tasks

COMMON = ["--task", "bb_2digit_addition", "--n-test", "100", "--lr", "1e-3", "--warmup-steps", "1"]


def train(base: Path, out: Path, procs: int, *args: str, timeout: float = 300) -> dict:
    """Run the training CLI (under torchrun for procs > 1); sun_train.json of the export."""
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
        if procs > 1
        else [sys.executable]
    )
    argv = [*launcher, "-m", "sun_sglang.train", "--base", str(base), "--out", str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "sun_train.json").read_text())


def weights(folder: Path) -> dict[str, torch.Tensor]:
    name = (
        "adapter_model.safetensors"
        if (folder / "adapter_model.safetensors").is_file()
        else "model.safetensors"
    )
    return load_file(folder / name)


def assert_same_weights(a: Path, b: Path, start: Path | None = None) -> None:
    """Elementwise, or against `start` (the weights both began from): their difference a small
    part of the training's own update. Adam scales every gradient element to about lr, so an
    element whose gradient is ~0 and whose sign depends on the summation order (one process, or
    an all-reduce of two) moves by +-lr in one run and -+lr in the other: elementwise closeness
    then depends on the CPU's reduction kernels (it failed on an AVX2-only EPYC, held on AMX)."""
    wa, wb = weights(a), weights(b)
    w0 = weights(start) if start is not None else {}
    assert wa.keys() == wb.keys()
    for key in wa:
        if key in w0:
            update = (wa[key] - w0[key]).norm()
            assert (wa[key] - wb[key]).norm() <= 0.01 * update + 1e-6, key
        else:
            torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=2e-6, msg=key)


@pytest.mark.parametrize(
    "mode, sharded_only",
    [
        pytest.param("sun", [], id="sun"),
        pytest.param("lora", [], id="lora"),
        pytest.param("full", [], id="full"),
        pytest.param("sun", ["--activation-checkpointing", "--decode-sharding", "shard"], id="sun-savers"),
    ],
)
def test_two_sharded_processes_train_as_one(
    tiny_base: Path, tmp_path: Path, mode: str, sharded_only: list
) -> None:
    """`sharded_only`: settings of the two-process run alone (memory savers: the same result)."""
    run = ["--mode", mode, "--steps", "3", *COMMON] + (["--lora-rank", "4"] if mode == "lora" else [])
    one = train(tiny_base, tmp_path / "one", 1, "--batch-size", "4", *run)
    two = train(tiny_base, tmp_path / "two", 2, "--batch-size", "2", *run, *sharded_only)
    assert one["losses"] == pytest.approx(two["losses"], rel=1e-5)
    (whole,), halves = one["trained_params_per_rank"], two["trained_params_per_rank"]
    assert len(halves) == 2 and all(abs(h - whole / 2) <= whole * 0.01 for h in halves)  # sharded, not copied
    assert one["losses"][0] != one["losses"][-1]  # it trained
    assert_same_weights(tmp_path / "one", tmp_path / "two", tiny_base)


def test_a_killed_sharded_run_resumes_as_the_straight_run(tiny_base: Path, tmp_path: Path) -> None:
    """Both ranks SIGKILLed once a checkpoint exists, then `--resume`: the same losses and weights
    as a run never stopped; the shards resume on their own process count only."""
    args = ["--steps", "12", "--batch-size", "2", "--save-every", "2", *COMMON]
    straight = train(tiny_base, tmp_path / "straight", 2, *args)
    killed = tmp_path / "killed"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    argv += ["sun_sglang.train", "--base", str(tiny_base), "--out", str(killed), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (killed / "checkpoint" / "trainer.json").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    saved = json.loads((killed / "checkpoint" / "trainer.json").read_text())["step"]
    assert 2 <= saved < 12 and not (killed / "sun_train.json").exists()  # cut short, mid-run
    resumed = train(tiny_base, killed, 2, "--resume", "--keep-checkpoint", *args)
    assert resumed["losses"] == pytest.approx(straight["losses"], rel=1e-6)
    assert_same_weights(tmp_path / "straight", killed)
    with pytest.raises(AssertionError, match="written by 2 processes"):  # shards fit their count only
        train(tiny_base, killed, 1, "--resume", *args)


def one_token_split(path: Path) -> int:
    """A seed whose first step gives rank 0 an answer of one token (only the end of turn) and
    rank 1 a longer one."""
    rows = [{"prompt": f"q{i}", "answer": "" if i % 2 else f"a long answer {i}"} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for seed in range(100):
        train_set, _ = tasks.split(tasks.load(str(path)), seed, 1)
        order = list(range(len(train_set)))
        random.Random(seed * 1_000_003).shuffle(order)
        first, second = (train_set[i].answer for i in order[:2])
        if first == "" and second:
            return seed
    raise AssertionError("no such seed")


@pytest.mark.parametrize("extra", [["--mode", "full"], ["--mode", "sun", "--decode-sharding", "shard"]])
def test_one_token_answers_on_one_rank_do_not_stall_the_others(
    tiny_base: Path, tmp_path: Path, extra: list[str]
) -> None:
    data = tmp_path / "chats.jsonl"
    seed = one_token_split(data)
    args = ["--task", str(data), "--n-test", "1", "--seed", str(seed), "--steps", "2", "--batch-size", "1"]
    out = train(tiny_base, tmp_path / "out", 2, *args, *extra, timeout=180)
    assert len(out["losses"]) == 2


def test_bf16_mixed_precision_trains_in_bf16_and_keeps_fp32_weights(tiny_base: Path, tmp_path: Path) -> None:
    """bf16 compute (FSDP2's param dtype; autocast in one process), float32 weights and optimizer
    state: the losses follow the float32 run's within bf16's precision, the export is float32."""
    run = ["--steps", "3", *COMMON]
    exact = train(tiny_base, tmp_path / "fp32", 1, "--batch-size", "4", *run)
    one = train(tiny_base, tmp_path / "one", 1, "--batch-size", "4", "--precision", "bf16-mixed", *run)
    two = train(tiny_base, tmp_path / "two", 2, "--batch-size", "2", "--precision", "bf16-mixed", *run)
    for mixed in (one, two):
        assert mixed["losses"] == pytest.approx(exact["losses"], rel=2e-2)
        assert mixed["losses"] != exact["losses"]  # it did compute in bf16
    for folder in ("one", "two"):
        assert {w.dtype for w in weights(tmp_path / folder).values()} == {torch.float32}
