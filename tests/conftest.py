"""Shared fixtures: prepared models (built once into the cache, then reused)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from sun_sglang.models import prepare

if torch.version.cuda is None:
    # SGLang caches is_cpu() at first call: set before any test imports sglang.
    os.environ.setdefault("SGLANG_USE_CPU_ENGINE", "1")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# A SIGTERM (CI time-out, kill) runs fixture teardown like Ctrl-C: clusters get stopped.
signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    return prepare("tiny-llama")


@pytest.fixture(scope="session")
def tiny_task() -> Path:
    return prepare("tiny-llama-variant-a")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return prepare("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> list[Path]:
    """Two LoRA adapters (rank 4, every linear layer, random B so that they change the model) on
    the tiny base."""
    from sun_sglang import adapters

    return [
        adapters.save_random(
            tiny_base, tmp_path_factory.mktemp(f"tiny-adapter-{seed}"), 4, adapters.ALL_LINEAR, seed, 0.05
        )
        for seed in (1, 2)
    ]


@pytest.fixture(scope="session")
def tiny_qwen2() -> Path:
    """A random 2-layer Qwen2 with Qwen2.5's tokenizer and tool template (prepares Qwen2.5 first)."""
    return prepare("tiny-qwen2")


@pytest.fixture(scope="session", params=["tiny-llama", "tiny-qwen2"])
def tiny_family(request: pytest.FixtureRequest) -> Path:
    """Each model family at tiny size: Llama (tied head) and Qwen2 (biased QKV, untied head)."""
    return prepare(request.param)
