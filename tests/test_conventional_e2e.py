"""The baseline on real servers: conventional disaggregation, each task with decode servers of
its own holding the task model. Same gateway, same code path; the greedy tokens must be the task
model's own (prefill and decode both by the task model), unlike SUN's."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from sun_sglang.models import prepare
from sun_sglang.reference import SunReference
from tests.cluster_util import TASKS, post, start_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
QUESTION = "Write a haiku about the sea."


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    running = start_cluster(tmp_path_factory.mktemp("conventional"), "mooncake_tcp", mode="conventional")
    try:
        yield running
    finally:
        running.stop()


def test_each_task_is_decoded_by_its_own_model(cluster) -> None:
    base = str(prepare("smollm2-135m"))
    for task, model in TASKS.items():
        path = str(prepare(model))
        tok = AutoTokenizer.from_pretrained(path)
        ids = list(
            tok.apply_chat_template(
                [{"role": "user", "content": QUESTION}], add_generation_prompt=True, tokenize=True
            )["input_ids"]
        )
        alone = SunReference.load(path, path).generate([ids], 16)[0]
        sun = SunReference.load(path, base).generate([ids], 16)[0]
        body = {"model": task, "input_ids": ids, "sampling_params": {"max_new_tokens": 16, "temperature": 0}}
        served = post(f"{cluster.gateway_url}/generate", body)["output_ids"]
        assert served == alone
        assert served != sun
