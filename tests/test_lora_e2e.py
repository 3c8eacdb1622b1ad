"""LoRA prefill modules end to end on real SGLang servers: one multi-LoRA prefill server holding
two SUN-trained adapters, one full-copy task on its own prefill server, one shared decode server
holding the plain base, the gateway in front. Greedy tokens must equal the SUN reference (adapter
merged into the prefill weights, base decode) and differ from the base alone; an adapter loaded at
run time is served at once, and once unloaded its requests get a 404 while the others go on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.plan import plan
from sun_sglang.models import prepare
from sun_sglang.reference import SunReference
from tests.cluster_util import free_port_block, post, post_status

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ADAPTERS = {"math": "smollm2-135m-sun-addition-lora", "sports": "smollm2-135m-sun-sports-lora"}
FULL = {"chat": "smollm2-135m-variant-b"}
QUESTIONS = ["What is 12 + 30?", "Is the following sentence plausible? The goalie scored a touchdown."]
MAX_NEW = 12
ADMIN = "admin-secret"


def chat_ids(question: str) -> list[int]:
    from router.tokenizer import TaskTokenizer

    return TaskTokenizer(str(prepare("smollm2-135m"))).chat_ids([{"role": "user", "content": question}])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("lora-cluster")
    first, router_port = free_port_block(3, 500), free_port_block(1, 1) + 10
    tasks = {t: f"{{adapter: {prepare(m)}, pool: lora}}" for t, m in ADAPTERS.items()}
    tasks |= {t: f"{{model_path: {prepare(m)}}}" for t, m in FULL.items()}
    (tmp / "cluster.yaml").write_text(
        f"base: {prepare('smollm2-135m')}\n"
        "transfer_backend: mooncake_tcp\n"
        "prefill_pools: {lora: {max_lora_rank: 16, max_loras_per_batch: 4}}\n"
        "tasks:\n"
        + "".join(f"  {t}: {spec}\n" for t, spec in tasks.items())
        + f"router: {{host: 127.0.0.1, port: {router_port}, admin_token: {ADMIN}}}\n"
        f"first_port: {first}\n"
    )
    running = Cluster(plan(cluster_config.load(tmp / "cluster.yaml"), "cpu"), tmp / "logs", timeout_s=300)
    running.start()
    try:
        yield running
    finally:
        running.stop()
    assert all(p.exit_code() is not None for p in running.procs)


def generate(cluster: Cluster, task: str, ids: list[int]) -> list[int]:
    body = {"model": task, "input_ids": ids, "sampling_params": {"max_new_tokens": MAX_NEW, "temperature": 0}}
    return post(f"{cluster.gateway_url}/generate", body)["output_ids"]


def admin(cluster: Cluster, path: str, body: dict) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{cluster.gateway_url}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {ADMIN}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_adapter_and_full_copy_tasks_match_the_sun_reference(cluster: Cluster) -> None:
    base = str(prepare("smollm2-135m"))
    prompts = [chat_ids(q) for q in QUESTIONS]
    jobs = [(task, i) for task in [*ADAPTERS, *FULL] for i in range(len(prompts))]
    with ThreadPoolExecutor(len(jobs)) as workers:  # one prefill batch mixes adapters
        served = dict(zip(jobs, workers.map(lambda job: generate(cluster, job[0], prompts[job[1]]), jobs)))
    base_alone = SunReference.load(base, base).generate(prompts, MAX_NEW)
    for task, model in {**ADAPTERS, **FULL}.items():
        got = [served[(task, i)] for i in range(len(prompts))]
        want = SunReference.load(str(prepare(model)), base).generate(prompts, MAX_NEW)
        assert got == want, f"{task}: served tokens differ from the SUN reference"
        assert got != base_alone, f"{task}: indistinguishable from the base alone"


def test_an_adapter_loaded_at_run_time_is_served_then_unloaded(cluster: Cluster, tmp_path: Path) -> None:
    from sun_sglang import adapters
    from sun_sglang.reference import load_model

    base = str(prepare("smollm2-135m"))
    adapters.save_random(
        base, tmp_path / "poetry", 8, ("q_proj", "k_proj", "v_proj", "o_proj"), seed=3, std=0.02
    )
    ids = chat_ids("Write a line about the sea.")

    status, out = admin(
        cluster, "/admin/adapters", {"task": "poetry", "pool": "lora", "path": str(tmp_path / "poetry")}
    )
    assert status == 200, out
    want = SunReference.load(str(tmp_path / "poetry"), base).generate([ids], MAX_NEW)[0]
    assert generate(cluster, "poetry", ids) == want
    assert want != SunReference.load(base, base).generate([ids], MAX_NEW)[0]

    status, out = admin(cluster, "/admin/adapters/unload", {"task": "poetry"})
    assert status == 200 and out["failed"] == {}, out
    body = {"model": "poetry", "input_ids": ids, "sampling_params": {"max_new_tokens": 2}}
    status, out = post_status(f"{cluster.gateway_url}/generate", body)
    assert status == 404 and out["error"]["code"] == "model_not_found"
    math = str(prepare(ADAPTERS["math"]))
    prompt = chat_ids(QUESTIONS[0])
    assert generate(cluster, "math", prompt) == SunReference.load(math, base).generate([prompt], MAX_NEW)[0]

    # an adapter that does not fit the servers is refused before any server sees it
    status, out = admin(
        cluster, "/admin/adapters", {"task": "big", "pool": "lora", "path": str(prepare(ADAPTERS["math"]))}
    )
    assert status == 200  # the same adapter under a second name is fine...
    wide = adapters.wrap(load_model(base), 32, 32.0, ("q_proj",))
    wide.save_pretrained(tmp_path / "wide")
    status, out = admin(
        cluster, "/admin/adapters", {"task": "wide", "pool": "lora", "path": str(tmp_path / "wide")}
    )
    assert status == 409 and "rank 32 > the prefill servers' max_lora_rank 16" in out["error"]["message"]
