"""Faults on a real cluster (two tasks, two shared decode servers, mooncake_tcp): a prefill
server killed mid-load, then a decode server killed. Bounded waits throughout."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sun_sglang.launch.cluster import Cluster
from tests.cluster_util import get_json, get_text, post_status, start_cluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    running = start_cluster(tmp_path_factory.mktemp("faults"), "mooncake_tcp", decode_replicas=2)
    try:
        yield running
    finally:
        running.stop()


def _chat(cluster: Cluster, task: str, max_tokens: int = 24) -> tuple[int, dict, float, float]:
    """(status, body, seconds taken, monotonic time it ended)"""
    body = {
        "model": task,
        "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    t0 = time.monotonic()
    status, data = post_status(f"{cluster.gateway_url}/v1/chat/completions", body, timeout=120)
    return status, data, time.monotonic() - t0, time.monotonic()


def _kill(cluster: Cluster, name: str) -> None:
    (proc,) = [p for p in cluster.procs if p.name == name]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.popen.wait(timeout=30)


def _decode_holds_nothing(cluster: Cluster, url: str) -> bool:
    """No request and no KV page held: SGLang defers freeing the pages of a transfer cut by a dead
    prefill server until its abort ack, which never comes, or for 30 s (its safety timeout)."""
    (load,) = get_json(f"{url}/v1/loads")["loads"]
    disagg = load.get("disaggregation") or {}
    held = [load["num_running_reqs"], load["num_waiting_reqs"], load["num_used_tokens"]] + [
        disagg.get(k, 0)
        for k in ("decode_prealloc_queue_reqs", "decode_transfer_queue_reqs", "decode_retracted_queue_reqs")
    ]
    return not any(held)


def _eventually(check, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(1)
    return False


def test_killed_prefill_fails_its_task_fast_and_others_keep_working(cluster: Cluster) -> None:
    jobs = ["math"] * 3 + ["chat"] * 2
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(_chat, cluster, task) for task in jobs]
        time.sleep(1.0)
        killed_at = time.monotonic()
        _kill(cluster, "prefill-math-0")
        results = [f.result(timeout=180) for f in futures]
    for task, (status, data, _took, ended) in zip(jobs, results):
        if task == "chat":
            assert status == 200, data
        else:  # finished before the kill, or a clear error soon after it (not a 300 s timeout)
            assert status == 200 or (status == 502 and "upstream" in data["error"]["type"]), data
            assert status == 200 or ended - killed_at < 30
    status, data, took, _ = _chat(cluster, "math")
    assert status in (502, 503) and took < 10, (status, data, took)
    assert _chat(cluster, "chat")[0] == 200
    decode_urls = [s.url for s in cluster.plan.decode]
    assert _eventually(lambda: all(_decode_holds_nothing(cluster, u) for u in decode_urls), 60), [
        get_json(f"{u}/v1/loads")["loads"] for u in decode_urls
    ]


def test_killed_decode_server_new_requests_go_to_the_other(cluster: Cluster) -> None:
    _kill(cluster, "decode-0")
    results = [_chat(cluster, "chat", max_tokens=8) for _ in range(4)]
    assert [r[0] for r in results] == [200] * 4, results
    # The dead server leaves the pool: at once if a request was refused by it, else after two
    # failed health probes (5 s apart). The gateway may have routed around it before either:
    # SGLang's /v1/loads can show it carrying tokens the gateway did not place.
    healthy_one = 'sun_pool_workers{pool="decode",state="healthy"} 1.0'
    assert _eventually(lambda: healthy_one in get_text(f"{cluster.gateway_url}/metrics"), 20)
