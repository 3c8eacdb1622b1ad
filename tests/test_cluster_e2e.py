"""End to end on real SGLang servers: two prefill servers holding two different task checkpoints
of SmolLM2-135M, one decode server holding the base, the gateway in front; once per transfer
backend. Greedy tokens must equal the SUN reference, and differ from the base alone and from the
task model alone: the KV came from the task's prefill module, the decoding from the shared base.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sun_sglang.launch.cluster import Cluster
from sun_sglang.models import prepare
from sun_sglang.reference import SunReference
from tests.cluster_util import TASKS, free_port_block, post, start_cluster

pytestmark = pytest.mark.cluster

QUESTIONS = [
    "What is 12 + 30?",
    "Write a haiku about the sea.",
    "Name three colours.",
    "What is the capital of France?",
]
MAX_NEW = 16


@pytest.fixture(scope="module")
def prompts() -> dict[str, list[list[int]]]:
    """Token ids per task, from each task's own tokenizer and chat template."""
    from transformers import AutoTokenizer

    out = {}
    for task, model in TASKS.items():
        tok = AutoTokenizer.from_pretrained(prepare(model))
        out[task] = [
            list(
                tok.apply_chat_template(
                    [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True
                )["input_ids"]
            )
            for q in QUESTIONS
        ]
    return out


@pytest.fixture(scope="module")
def expected(prompts: dict[str, list[list[int]]]) -> dict[str, dict[str, list[list[int]]]]:
    base = str(prepare("smollm2-135m"))
    out: dict[str, dict[str, list[list[int]]]] = {}
    for task, model in TASKS.items():
        path = str(prepare(model))
        out[task] = {
            "sun": SunReference.load(path, base).generate(prompts[task], MAX_NEW),
            "base_alone": SunReference.load(base, base).generate(prompts[task], MAX_NEW),
            "task_alone": SunReference.load(path, path).generate(prompts[task], MAX_NEW),
        }
    return out


@pytest.fixture(scope="module", params=["mooncake_tcp", "nixl"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    running = start_cluster(tmp_path_factory.mktemp(f"cluster-{request.param}"), request.param)
    try:
        yield running
    finally:
        running.stop()
    assert all(p.exit_code() is not None for p in running.procs)


def test_concurrent_tasks_match_sun_reference(expected, prompts, cluster: Cluster) -> None:
    n = len(QUESTIONS)
    jobs = [(task, i) for i in range(n) for task in TASKS]

    def ask(job: tuple[str, int]) -> list[int]:
        task, i = job
        body = {
            "model": task,
            "input_ids": prompts[task][i],
            "sampling_params": {"max_new_tokens": MAX_NEW, "temperature": 0},
        }
        return post(f"{cluster.gateway_url}/generate", body)["output_ids"]

    with ThreadPoolExecutor(len(jobs)) as pool:
        served = dict(zip(jobs, pool.map(ask, jobs)))
    for task in TASKS:
        got = [served[(task, i)] for i in range(n)]
        assert got == expected[task]["sun"][:n], f"{task}: served tokens differ from the SUN reference"
        assert got != expected[task]["base_alone"][:n], f"{task}: indistinguishable from the base alone"
        assert got != expected[task]["task_alone"][:n], f"{task}: indistinguishable from the task model alone"


def test_served_evaluation_equals_offline_evaluation(cluster: Cluster) -> None:
    """The trained SUN prefill module, exported and served by an SGLang prefill server: task
    answers through the gateway equal the offline SUN reference's, and beat the base alone."""
    from sun_sglang import tasks
    from sun_sglang.eval import evaluate_offline, evaluate_served

    path, base = str(prepare(TASKS["math"])), str(prepare("smollm2-135m"))
    _, test = tasks.split(tasks.load("bb_2digit_addition"), seed=0, n_test=200)
    test = test[:24]
    served = evaluate_served(cluster.gateway_url, "math", path, test)
    offline = evaluate_offline(path, base, test)
    assert served.predictions == offline.predictions
    assert served.accuracy > evaluate_offline(base, base, test).accuracy


def test_logprobs_come_from_the_module_that_chose_each_token(prompts, cluster: Cluster) -> None:
    """The first token's logprob is the prefill module's (shipped with the KV), later ones the
    decode module's: both equal the SUN reference, and the first differs from the base's own."""
    from sun_sglang.reference import load_model, sun_logprobs

    body = {
        "model": "math",
        "input_ids": prompts["math"][0],
        "sampling_params": {"max_new_tokens": 6, "temperature": 0},
        "return_logprob": True,
    }
    out = post(f"{cluster.gateway_url}/generate", body)
    served = [entry[0] for entry in out["meta_info"]["output_token_logprobs"]]
    prefill, base = load_model(str(prepare(TASKS["math"]))), load_model(str(prepare("smollm2-135m")))
    want = sun_logprobs(prefill, base, prompts["math"][0], out["output_ids"])
    assert served == pytest.approx(want, abs=2e-3)
    base_first = sun_logprobs(base, base, prompts["math"][0], out["output_ids"][:1])[0]
    assert abs(base_first - served[0]) > 1e-2


def test_chat_completions_match_reference_text(expected, cluster: Cluster) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(prepare("smollm2-135m"))
    for task in TASKS:
        body = {
            "model": task,
            "messages": [{"role": "user", "content": QUESTIONS[0]}],
            "max_tokens": MAX_NEW,
            "temperature": 0,
        }
        out = post(f"{cluster.gateway_url}/v1/chat/completions", body)
        want = tok.decode(expected[task]["sun"][0], skip_special_tokens=True)
        assert out["choices"][0]["message"]["content"] == want
        assert out["usage"]["completion_tokens"] == len(expected[task]["sun"][0])


@pytest.fixture(scope="module")
def truncated_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, loadable 20-layer SmolLM2: the hazard that silently decodes garbage."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = prepare("smollm2-135m")
    model = AutoModelForCausalLM.from_pretrained(base)
    model.model.layers = model.model.layers[:20]
    model.config.num_hidden_layers = 20
    out = tmp_path_factory.mktemp("truncated")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def test_mismatched_prefill_refused_and_decode_keeps_serving(
    expected, prompts, truncated_checkpoint: Path, cluster: Cluster
) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sun_sglang.launch",
            "prefill",
            "--task",
            "bad",
            "--model-path",
            str(truncated_checkpoint),
            "--decode-model-path",
            str(prepare("smollm2-135m")),
            "--port",
            str(free_port_block(1, 1)),
            "--bootstrap-port",
            str(free_port_block(1, 1) + 1),
            "--transfer-backend",
            cluster.plan.servers[0].options.transfer_backend,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "num_hidden_layers: 20 (prefill) vs 30 (decode)" in out.stderr
    body = {
        "model": "chat",
        "input_ids": prompts["chat"][1],
        "sampling_params": {"max_new_tokens": MAX_NEW, "temperature": 0},
    }
    assert post(f"{cluster.gateway_url}/generate", body)["output_ids"] == expected["chat"]["sun"][1]
    assert all(p.exit_code() is None for p in cluster.procs)


def test_openai_client_streams_the_reference(expected, cluster: Cluster) -> None:
    from openai import OpenAI
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(prepare("smollm2-135m"))
    client = OpenAI(base_url=f"{cluster.gateway_url}/v1", api_key="unused", timeout=300)
    assert sorted(m.id for m in client.models.list().data) == sorted(TASKS)
    for task in TASKS:
        stream = client.chat.completions.create(
            model=task,
            messages=[{"role": "user", "content": QUESTIONS[1]}],
            max_tokens=MAX_NEW,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts, usage = [], None
        for chunk in stream:
            parts += [c.delta.content or "" for c in chunk.choices]
            usage = chunk.usage or usage
        assert "".join(parts) == tok.decode(expected[task]["sun"][1], skip_special_tokens=True)
        assert usage is not None and usage.completion_tokens == len(expected[task]["sun"][1])


def test_openai_client_completions_match_the_reference(expected, prompts, cluster: Cluster) -> None:
    """/v1/completions with token-id prompts (the chat-templated ids), streamed and not."""
    from openai import OpenAI
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(prepare("smollm2-135m"))
    client = OpenAI(base_url=f"{cluster.gateway_url}/v1", api_key="unused", timeout=300)
    for task in TASKS:
        want = tok.decode(expected[task]["sun"][2], skip_special_tokens=True)
        args = {"model": task, "prompt": prompts[task][2], "max_tokens": MAX_NEW, "temperature": 0}
        reply = client.completions.create(**args)
        assert reply.choices[0].text == want
        assert reply.usage.prompt_tokens == len(prompts[task][2])
        assert reply.usage.completion_tokens == len(expected[task]["sun"][2])
        streamed = "".join(
            c.choices[0].text for c in client.completions.create(**args, stream=True) if c.choices
        )
        assert streamed == want


def test_later_turns_hit_the_prefill_prefix_cache(cluster: Cluster) -> None:
    """A conversation resent turn by turn: each turn's prompt holds the previous turn's prompt,
    which the task's prefill server still has in its radix cache (reported as cached tokens)."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{cluster.gateway_url}/v1", api_key="unused", timeout=300)
    messages: list[dict[str, str]] = []
    seen = []
    for user in ["Tell me about the moon.", "And the sun?", "Which is bigger?"]:
        messages.append({"role": "user", "content": user})
        reply = client.chat.completions.create(model="math", messages=messages, max_tokens=12, temperature=0)
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
        seen.append((reply.usage.prompt_tokens, reply.usage.prompt_tokens_details.cached_tokens))
    for (prev_prompt, _), (prompt, cached) in zip(seen, seen[1:]):
        assert prev_prompt <= cached < prompt, seen


def test_sampling_fields_take_effect_on_both_legs(expected, prompts, cluster: Cluster) -> None:
    """The prefill server samples the first token, the decode server the rest: logit_bias pinning
    one token makes every token that one (both legs honoured it); top_k=1 at temperature 1 is the
    greedy SUN answer; min_tokens holds off the end of turn."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(prepare("smollm2-135m"))
    url = f"{cluster.gateway_url}/v1/completions"
    pinned = tok.encode(" blue", add_special_tokens=False)[0]
    for task in TASKS:
        body = {"model": task, "prompt": prompts[task][0], "max_tokens": 4, "temperature": 0}
        out = post(url, {**body, "logit_bias": {str(pinned): 100}})
        assert out["choices"][0]["text"] == tok.decode([pinned] * 4), out
        want = tok.decode(expected[task]["sun"][0], skip_special_tokens=True)
        sampled = post(url, {**body, "max_tokens": MAX_NEW, "temperature": 1.0, "top_k": 1, "seed": 5})
        assert sampled["choices"][0]["text"] == want
        if len(expected[task]["sun"][0]) < MAX_NEW:  # the greedy answer ended early: now it may not
            longer = post(url, {**body, "max_tokens": MAX_NEW, "min_tokens": MAX_NEW})
            assert longer["usage"]["completion_tokens"] == MAX_NEW
