"""QSUN end to end on real SGLang servers (CPU): the shared decode server holds the 4-bit GPTQ
base (its dequantized checkpoint: SGLang has no low-bit CPU kernels without AMX), the task's
prefill server a prefill module trained against it. Greedy tokens through the gateway must equal
the offline QSUN reference, and served evaluation must equal offline evaluation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.plan import plan
from sun_sglang.models import prepare
from sun_sglang.quant import decode_module
from sun_sglang.reference import SunReference
from tests.cluster_util import free_port_block, post

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

QUESTIONS = ["What is 12 + 30?", "What is 47 + 25?", "Name three colours."]
MAX_NEW = 12


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("qsun-cluster")
    first, router_port = free_port_block(2, 500), free_port_block(1, 1) + 10
    (tmp / "cluster.yaml").write_text(
        f"base: {prepare('smollm2-135m-w4')}\n"  # a QSUN folder: the launcher picks dequantized/ on CPU
        "transfer_backend: mooncake_tcp\n"
        f"tasks: {{math: {{model_path: {prepare('smollm2-135m-qsun-addition')}}}}}\n"
        f"router: {{host: 127.0.0.1, port: {router_port}}}\n"
        f"first_port: {first}\n"
    )
    running = Cluster(plan(cluster_config.load(tmp / "cluster.yaml"), "cpu"), tmp / "logs", timeout_s=300)
    running.start()
    try:
        yield running
    finally:
        running.stop()
    assert all(p.exit_code() is not None for p in running.procs)


def test_served_qsun_matches_the_offline_reference(cluster: Cluster) -> None:
    from router.tokenizer import TaskTokenizer

    prefill = str(prepare("smollm2-135m-qsun-addition"))
    decode = str(decode_module(prepare("smollm2-135m-w4"), "cpu"))
    assert cluster.plan.decode[0].model_path == decode
    tok = TaskTokenizer(prefill)
    prompts = [tok.chat_ids([{"role": "user", "content": q}]) for q in QUESTIONS]

    def ask(ids: list[int]) -> list[int]:
        body = {
            "model": "math",
            "input_ids": ids,
            "sampling_params": {"max_new_tokens": MAX_NEW, "temperature": 0},
        }
        return post(f"{cluster.gateway_url}/generate", body)["output_ids"]

    with ThreadPoolExecutor(len(prompts)) as workers:
        served = list(workers.map(ask, prompts))
    assert served == SunReference.load(prefill, decode).generate(prompts, MAX_NEW)
    base = str(prepare("smollm2-135m"))
    assert served != SunReference.load(base, base).generate(prompts, MAX_NEW)


def test_served_evaluation_equals_offline_evaluation(cluster: Cluster) -> None:
    from sun_sglang import tasks
    from sun_sglang.eval import evaluate_offline, evaluate_served

    prefill = str(prepare("smollm2-135m-qsun-addition"))
    decode = str(decode_module(prepare("smollm2-135m-w4"), "cpu"))
    _, test = tasks.split(tasks.load("bb_2digit_addition"), seed=0, n_test=200)
    served = evaluate_served(cluster.gateway_url, "math", prefill, test[:16])
    offline = evaluate_offline(prefill, decode, test[:16])
    assert served.predictions == offline.predictions
