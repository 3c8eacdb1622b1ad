"""The launcher's supervisor on stand-in servers (stub processes): a killed one is restarted and
the others untouched; one that cannot start again is left down after its tries; a hung one is
killed and restarted; a refused pre-restart check leaves it down. The gateway reports it all."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from router import supervision
from sun_sglang.launch.process import ManagedProcess, stop_all, wait_healthy
from sun_sglang.launch.supervise import SupervisionConfig, Supervisor, backoff
from tests.test_gateway_ops import _free_port

QUICK = SupervisionConfig(
    max_restarts=2, backoff_s=0.2, backoff_max_s=1.0, hang_s=1.5, probe_s=0.2, startup_s=30
)


def _stub(tmp: Path, name: str) -> ManagedProcess:
    port = _free_port()
    argv = [sys.executable, "-m", "sun_sglang.bench.stub_server", "--port", str(port)]
    return ManagedProcess(
        name, argv, dict(os.environ), tmp / f"{name}.log", f"http://127.0.0.1:{port}/health"
    )


def _until(sup: Supervisor, done, timeout_s: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, [w.status for w in sup.watched]
        sup.step()
        time.sleep(0.1)


@pytest.fixture
def stubs(tmp_path: Path):
    procs = [_stub(tmp_path, n) for n in ("prefill-a", "prefill-b", "decode-0")]
    for p in procs:
        p.start()
    try:
        wait_healthy(procs, 60, 0.2)
        yield procs
    finally:
        stop_all(procs, grace_s=2)


def test_backoff_doubles_up_to_its_bound() -> None:
    cfg = SupervisionConfig(backoff_s=2, backoff_max_s=60)
    assert [backoff(n, cfg) for n in (1, 2, 3, 6, 9)] == [2, 4, 8, 60, 60]


def test_a_killed_server_is_restarted_and_the_others_untouched(stubs, tmp_path: Path) -> None:  # noqa: ANN001
    state = tmp_path / "supervisor.json"
    sup = Supervisor(stubs, QUICK, state)
    pids = [p.pid for p in stubs]
    os.killpg(stubs[0].pid, signal.SIGKILL)
    _until(sup, lambda: sup.watched[0].status.restarts == 1 and sup.watched[0].status.state == "running")
    assert stubs[0].healthy() and stubs[0].pid != pids[0]
    assert [p.pid for p in stubs[1:]] == pids[1:] and all(p.healthy() for p in stubs[1:])
    written = json.loads(state.read_text())["processes"]
    assert written[0]["restarts"] == 1 and written[0]["last_exit"] == -9 and written[0]["state"] == "running"

    # a server that hangs (SIGSTOP): /health fails, it is killed after hang_s and restarted
    os.killpg(stubs[1].pid, signal.SIGSTOP)
    _until(sup, lambda: sup.watched[1].status.restarts == 1 and sup.watched[1].status.state == "running")
    assert stubs[1].healthy()

    # one that can never start again is left down after max_restarts, the rest serving
    stubs[2].argv = [sys.executable, "-c", "import sys; sys.exit(3)"]
    os.killpg(stubs[2].pid, signal.SIGKILL)
    _until(sup, lambda: sup.watched[2].status.state == "failed")
    down = sup.watched[2].status
    assert down.restarts == QUICK.max_restarts and down.last_exit == 3 and "code 3" in (down.reason or "")
    assert stubs[0].healthy() and stubs[1].healthy()
    reader = supervision.Reader(str(state))
    assert reader.by_url()[down.url].state == "failed"


def test_a_refused_recheck_leaves_the_server_down(stubs, tmp_path: Path) -> None:  # noqa: ANN001
    sup = Supervisor(
        stubs,
        QUICK,
        tmp_path / "s.json",
        check=lambda name: "layers: 2 vs 3" if name == "prefill-a" else None,
    )
    os.killpg(stubs[0].pid, signal.SIGKILL)
    _until(sup, lambda: sup.watched[0].status.state == "failed")
    assert sup.watched[0].status.restarts == 0 and "refused: layers: 2 vs 3" in sup.watched[0].status.reason


def test_the_gateway_reports_supervision(tiny_base: Path, tmp_path: Path) -> None:
    import asyncio

    from tests.test_gateway import gateway

    state = tmp_path / "supervisor.json"

    async def body() -> None:
        async with gateway(tiny_base, supervision_file=str(state), admin_token="t") as (
            url,
            client,
            _,
            decode,
        ):
            supervision.write(
                state,
                [
                    supervision.Supervised(
                        name="prefill-a",
                        url="http://x:1",
                        state="failed",
                        restarts=5,
                        failures=6,
                        last_exit=3,
                        reason="exited",
                    )
                ],
            )
            async with client.get(f"{url}/metrics") as r:
                text = await r.text()
            assert 'sun_supervised_restarts{process="prefill-a",url="http://x:1"} 5.0' in text
            assert 'sun_supervised_state{process="prefill-a",state="failed"} 1.0' in text
            async with client.get(f"{url}/admin/workers", headers={"Authorization": "Bearer t"}) as r:
                workers = await r.json()
            assert workers["supervised"][0]["state"] == "failed"

    asyncio.run(body())
