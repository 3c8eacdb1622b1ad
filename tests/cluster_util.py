"""Helpers for the tests that start real SGLang clusters."""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.plan import plan
from sun_sglang.launch.process import ManagedProcess, wait_healthy
from sun_sglang.launch.roles import CPU_FLAGS, GRAMMAR_BACKEND, ServeOptions, ServerSpec
from sun_sglang.models import prepare

# "math": a SUN-trained prefill module (BIG-bench 2-digit addition); "chat": a distinct-weight variant.
TASKS = {"math": "smollm2-135m-sun-addition", "chat": "smollm2-135m-variant-b"}


def free_port_block(n: int, offset: int) -> int:
    """A first port p with p..p+n and p+offset..p+offset+n all free on loopback."""
    for first in range(32000, 60000, 50):
        ports = [*range(first, first + n), *range(first + offset, first + offset + n)]
        if all(_free(p) for p in ports):
            return first
    raise RuntimeError("no free port block")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def post(url: str, body: dict, timeout: float = 300) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def post_status(url: str, body: dict, timeout: float = 300) -> tuple[int, dict]:
    """(HTTP status, JSON body), for calls that may fail."""
    try:
        return 200, post(url, body, timeout)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def get_text(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def get_json(url: str, timeout: float = 10) -> dict:
    return json.loads(get_text(url, timeout))


def start_cluster(
    tmp: Path,
    backend: str,
    decode_replicas: int = 1,
    mode: str = "sun",
    router_extra: str = "",
    extra_yaml: str = "",
    replicas: dict[str, int] | None = None,
    tasks: dict[str, str] | None = None,
    base: str = "smollm2-135m",
    task_extra: str = "",
) -> Cluster:
    """`tasks`: task -> model name (default TASKS); `replicas`: prefill servers per task (1 each by
    default; naming tasks there keeps only them); `task_extra`: more fields of every task."""
    tasks = {t: m for t, m in (tasks or TASKS).items() if replicas is None or t in replicas}
    count = {t: (replicas or {}).get(t, 1) for t in tasks}
    first = free_port_block(2 + sum(count.values()) + len(tasks) * decode_replicas, 500)
    router_port = free_port_block(1, 1) + 10
    yaml = tmp / "cluster.yaml"
    yaml.write_text(
        f"base: {prepare(base)}\n"
        f"transfer_backend: {backend}\n"
        f"mode: {mode}\n"
        f"decode: {{replicas: {decode_replicas}}}\n"
        "tasks:\n"
        + "".join(
            f"  {t}: {{model_path: {prepare(m)}, replicas: {count[t]}{task_extra}}}\n"
            for t, m in tasks.items()
        )
        + f"router: {{host: 127.0.0.1, port: {router_port}{router_extra}}}\n"
        f"first_port: {first}\n" + extra_yaml
    )
    cluster = Cluster(plan(cluster_config.load(yaml), "cpu"), tmp / "logs", timeout_s=300)
    cluster.start()
    return cluster


def start_plain_server(tmp: Path, model: str, extra: list[str] = ()) -> tuple[ManagedProcess, str]:
    """One ordinary (not disaggregated) SGLang server with its own OpenAI layer, started as the
    cluster's servers are (CPU flags and environment, xgrammar, float32): the oracle the
    differential tests compare the gateway against. Returns the process and its URL."""
    port = free_port_block(2, 1000)
    like = ServerSpec("decode", "plain", str(prepare(model)), port, "float32", ServeOptions(device="cpu"))
    argv = [
        sys.executable, "-m", "sglang.launch_server", "--model-path", like.model_path,
        "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32",
        "--grammar-backend", GRAMMAR_BACKEND, "--max-total-tokens", "4096", "--nccl-port", str(port + 1000),
        *CPU_FLAGS, *extra,
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess("plain", argv, like.env(), tmp / "plain.log", f"{url}/health")
    proc.start()
    try:
        wait_healthy([proc], timeout_s=300)
    except BaseException:
        proc.stop()
        raise
    return proc, url
