"""Supervision on a real cluster started by `python -m sun_sglang.launch cluster` (two tasks, two
shared decode servers): one task's prefill server SIGKILLed -> the other task keeps answering
throughout, the killed one is restarted and serves its task again, equal to the SUN reference;
a decode server SIGKILLed -> restarted and back in the pool; a prefill server whose checkpoint
no longer matches the decode module is left down after its next kill and reported, the rest
serving. Figures (time to detect, time back in service) are printed and kept as test properties."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sun_sglang.models import prepare
from sun_sglang.reference import SunReference
from tests.cluster_util import TASKS, free_port_block, get_text, post_status

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.manual]


def _wait(what: str, done, timeout_s: float) -> float:  # noqa: ANN001
    start = time.monotonic()
    while not done():
        assert time.monotonic() - start < timeout_s, f"timed out waiting for {what}"
        time.sleep(0.5)
    return time.monotonic() - start


def _admin_workers(url: str) -> dict:
    req = urllib.request.Request(f"{url}/admin/workers", headers={"Authorization": "Bearer admin"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _generate(url: str, task: str, ids: list[int]) -> tuple[int, list[int]]:
    body = {"model": task, "input_ids": ids, "sampling_params": {"max_new_tokens": 12, "temperature": 0}}
    status, out = post_status(f"{url}/generate", body, timeout=120)
    return status, out.get("output_ids", [])


class Cli:
    """The launcher as a user runs it, and what its supervisor reports."""

    def __init__(self, tmp: Path, yaml: str) -> None:
        (tmp / "cluster.yaml").write_text(yaml)
        self.log_dir, self.out_path = tmp / "logs", tmp / "launcher.out"
        self.out = open(self.out_path, "w")  # noqa: SIM115
        argv = [sys.executable, "-m", "sun_sglang.launch", "cluster", "--config", str(tmp / "cluster.yaml")]
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)

    def state(self, name: str) -> dict:
        try:
            procs = json.loads((self.log_dir / "supervisor.json").read_text())["processes"]
        except (OSError, ValueError):
            return {}
        return next(p for p in procs if p["name"] == name)

    def kill(self, name: str) -> float:
        os.killpg(self.state(name)["pid"], signal.SIGKILL)
        return time.monotonic()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        finally:
            self.out.close()


def test_servers_that_die_are_restarted_and_the_rest_keep_serving(tmp_path: Path, record_property) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    base = prepare("smollm2-135m")
    math = tmp_path / "math-module"  # links to the checkpoint, so that its config can be replaced
    math.mkdir()
    for f in prepare(TASKS["math"]).iterdir():
        (math / f.name).symlink_to(f)
    first, port = free_port_block(10, 500), free_port_block(1, 1) + 10
    cli = Cli(
        tmp_path,
        f"base: {base}\ntransfer_backend: mooncake_tcp\ndecode: {{replicas: 2}}\n"
        f"tasks:\n  math: {{model_path: {math}}}\n  chat: {{model_path: {prepare(TASKS['chat'])}}}\n"
        f"router: {{host: 127.0.0.1, port: {port}, admin_token: admin, health_interval_s: 1}}\n"
        f"first_port: {first}\nlog_dir: {tmp_path / 'logs'}\n"
        "supervision: {max_restarts: 2, backoff_s: 1, backoff_max_s: 4, probe_s: 1}\n",
    )
    url = f"http://127.0.0.1:{port}"
    tok = AutoTokenizer.from_pretrained(str(base))
    chat = [{"role": "user", "content": "What is 12 + 30?"}]
    ids = list(tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)["input_ids"])
    want = SunReference.load(str(math), str(base)).generate([ids], 12)[0]
    other: list[int] = []  # statuses of the other task's requests
    busy = threading.Event()

    def other_task() -> None:
        while busy.is_set():
            other.append(_generate(url, "chat", ids)[0])

    def with_other_task_running(action):  # noqa: ANN001, ANN202
        other.clear()
        busy.set()
        loop = threading.Thread(target=other_task)
        loop.start()
        try:
            return action()
        finally:
            busy.clear()
            loop.join(timeout=150)

    def serves_math() -> bool:
        return _generate(url, "math", ids) == (200, want)

    try:
        _wait("the cluster", lambda: "gateway: " in cli.out_path.read_text(), 420)
        assert serves_math()

        def kill_prefill() -> tuple[float, float]:
            killed = cli.kill("prefill-math-0")
            detect = _wait("the exit seen", lambda: cli.state("prefill-math-0")["state"] != "running", 60)
            _wait("math served again", serves_math, 300)
            return detect, time.monotonic() - killed

        detect, back = with_other_task_running(kill_prefill)
        assert other and set(other) == {200}, other  # the other task never failed
        assert cli.state("prefill-math-0")["restarts"] == 1
        record_property("prefill_detect_s", round(detect, 1))
        record_property("prefill_back_in_service_s", round(back, 1))

        decode_url = cli.state("decode-0")["url"]
        killed = cli.kill("decode-0")

        def decode_back() -> bool:
            (slot,) = [w for w in _admin_workers(url)["decode"] if w["url"] == decode_url]
            return slot["healthy"] and slot.get("supervision", {}).get("restarts") == 1

        _wait("decode-0 back in the pool", decode_back, 300)
        decode_s = time.monotonic() - killed
        record_property("decode_back_in_service_s", round(decode_s, 1))
        assert serves_math()

        config = json.loads((math / "config.json").read_text())  # the checkpoint replaced on disk
        (math / "config.json").unlink()
        (math / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))

        def kill_for_good() -> None:
            cli.kill("prefill-math-0")
            _wait("prefill-math-0 left down", lambda: cli.state("prefill-math-0")["state"] == "failed", 60)
            time.sleep(3)  # the other task goes on meanwhile

        with_other_task_running(kill_for_good)
        down = cli.state("prefill-math-0")
        assert "num_hidden_layers" in down["reason"] and other and set(other) == {200}, (down, other)
        assert 'sun_supervised_state{process="prefill-math-0",state="failed"} 1.0' in get_text(
            f"{url}/metrics"
        )
        assert _generate(url, "math", ids)[0] == 503  # its only prefill server is down: said at once
        print(
            f"prefill: detected {detect:.1f} s, serving {back:.1f} s after the kill; decode {decode_s:.1f} s"
        )
    finally:
        busy.clear()
        code = cli.stop()
    assert code == 0
