"""A SUN cluster across hosts, on one machine: network namespaces joined by a bridge stand in for
four hosts (the decode server; one task's prefill server each on two more; the gateway and the
client on the fourth), each running `python -m sun_sglang.launch cluster` with the same file.

Shown for mooncake_tcp and NIXL (UCX forced onto TCP: across namespaces it would otherwise copy
through shared memory and prove nothing): greedy answers equal the SUN reference; the servers
refuse requests without the cluster key (401) while the gateway's pass; every port the servers
listen on outside loopback is one the cluster file names (HTTP, bootstrap, torch.distributed),
in the pinned transfer range, or in the host's ephemeral range (SGLang's ZMQ control sockets,
which pyzmq binds to port 0), and the prefill host's connections to the decode host reach a
pinned transfer port; a prefill server on another host joins through the admin API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sun_sglang.models import prepare
from sun_sglang.reference import SunReference
from tests import netns
from tests.cluster_util import TASKS

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.manual,
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]

KEY, PORT, FIRST_PORT, TRANSFER = "cluster-secret", 8000, 30000, (20000, 20199)
ROOT = Path(__file__).resolve().parents[1]


def _yaml(backend: str, hosts: netns.Hosts, log_dir: Path) -> str:
    a = hosts.addresses
    ucx = "{UCX_TLS: tcp}" if backend == "nixl" else "{}"
    return (
        f"base: {prepare('smollm2-135m')}\ntransfer_backend: {backend}\n"
        f"hosts:\n  dec: {{address: {a['dec']}}}\n  pa: {{address: {a['pa']}}}\n"
        f"  pb: {{address: {a['pb']}}}\n  gw: {{address: {a['gw']}, bind: 0.0.0.0}}\n"
        "decode: {replicas: 1, host: dec}\n"
        f"tasks:\n  math: {{model_path: {prepare(TASKS['math'])}, host: pa}}\n"
        f"  chat: {{model_path: {prepare(TASKS['chat'])}, host: pb}}\n"
        f"router: {{host: gw, port: {PORT}, admin_token: admin, health_interval_s: 1}}\n"
        f"transfer_ports: {{low: {TRANSFER[0]}, high: {TRANSFER[1]}}}\ncluster_key: {KEY}\n"
        f"control_ports: {{low: {netns.EPHEMERAL[0]}, high: {netns.EPHEMERAL[1]}}}\n"
        f"first_port: {FIRST_PORT}\nlog_dir: {log_dir}\nprefill_env: {ucx}\ndecode_env: {ucx}\n"
    )


class Client:
    """HTTP from inside the gateway's host."""

    def __init__(self, hosts: netns.Hosts) -> None:
        self.hosts = hosts

    def calls(self, specs: list[dict]) -> list[dict]:
        argv = self.hosts.argv("gw", [sys.executable, str(ROOT / "tests" / "netns_client.py")])
        out = subprocess.run(argv, input=json.dumps(specs), capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def generate(self, url: str, task: str, ids: list[int], key: str | None = None) -> dict:
        body = {"model": task, "input_ids": ids, "sampling_params": {"max_new_tokens": 12, "temperature": 0}}
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.calls([{"method": "POST", "url": f"{url}/generate", "body": body, "headers": headers}])[0]


def _launch(hosts: netns.Hosts, config: Path, tmp: Path) -> dict[str, subprocess.Popen]:
    procs = {}
    for name in hosts.names:
        argv = [sys.executable, "-m", "sun_sglang.launch", "cluster", "--config", str(config)]
        with open(tmp / f"launcher-{name}.out", "w") as out:
            procs[name] = subprocess.Popen(
                hosts.argv(name, argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
            )
    return procs


def _wait_gateway(procs: dict[str, subprocess.Popen], tmp: Path, timeout_s: float) -> None:
    start = time.monotonic()
    while "gateway: " not in (tmp / "launcher-gw.out").read_text():
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        assert not dead, f"launchers exited {dead}: " + (tmp / f"launcher-{next(iter(dead))}.out").read_text()
        assert time.monotonic() - start < timeout_s, "the cluster did not come up"
        time.sleep(1)


def _stop(procs: dict[str, subprocess.Popen]) -> dict[str, int | None]:
    for name in ("gw", "pa", "pb", "dec"):  # the gateway first: it drains against live servers
        procs[name].send_signal(signal.SIGTERM)
        try:
            procs[name].wait(timeout=90)
        except subprocess.TimeoutExpired:
            procs[name].kill()
    return {n: p.poll() for n, p in procs.items()}


@pytest.mark.parametrize("backend", ["mooncake_tcp", "nixl"])
def test_cluster_across_hosts(backend: str, tmp_path: Path, record_property) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    base = str(prepare("smollm2-135m"))
    tok = AutoTokenizer.from_pretrained(base)
    chat = [{"role": "user", "content": "What is 12 + 30?"}]
    ids = list(tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)["input_ids"])
    want = {t: SunReference.load(str(prepare(m)), base).generate([ids], 12)[0] for t, m in TASKS.items()}

    with netns.Hosts(["dec", "pa", "pb", "gw"]) as hosts:
        config = tmp_path / "cluster.yaml"
        config.write_text(_yaml(backend, hosts, tmp_path / "logs"))
        client, a = Client(hosts), hosts.addresses
        gateway = f"http://{a['gw']}:{PORT}"
        decode_url, math_url, chat_url = (
            f"http://{a[h]}:{FIRST_PORT + i}" for i, h in enumerate(["dec", "pa", "pb"])
        )
        procs = _launch(hosts, config, tmp_path)
        try:
            t0 = time.monotonic()
            _wait_gateway(procs, tmp_path, 480)
            up_s = time.monotonic() - t0
            record_property("cluster_up_s", round(up_s, 1))
            for task in TASKS:
                answer = client.generate(gateway, task, ids)
                assert answer["status"] == 200 and answer["body"]["output_ids"] == want[task], answer

            # Straight to the servers: refused without the cluster key, /health open (probes).
            for url, task in ((math_url, "math"), (decode_url, "math"), (chat_url, "chat")):
                assert client.generate(url, task, ids)["status"] == 401
                assert client.generate(url, task, ids, key="wrong")["status"] == 401
            (health,) = client.calls([{"url": f"{math_url}/health"}])
            assert health["status"] == 200

            # Ports: outside loopback, only what a firewall rule names; the KV went over the range.
            low, high = TRANSFER
            for host, port in (("dec", FIRST_PORT), ("pa", FIRST_PORT + 1)):
                named = {port, port + 500, port + 1000}  # HTTP, bootstrap (prefill), torch.distributed
                stray = [
                    (addr, p)
                    for addr, p in hosts.listening(host)
                    if not addr.startswith("127.")
                    and p not in named
                    and not low <= p <= high
                    and not netns.EPHEMERAL[0] <= p <= netns.EPHEMERAL[1]  # ZMQ: control_ports
                ]
                assert not stray, f"{host}: listening outside the named ports: {stray}"
                # Bound to the host's address (bind is the address here), except what takes every
                # interface whatever it is told: torch.distributed's TCPStore (only loopback uses it)
                # and mooncake's listeners (its log says the address; the firewall rule limits them).
                wild = [
                    (addr, p)
                    for addr, p in hosts.listening(host)
                    if addr in ("*", "0.0.0.0") and p != port + 1000 and not low <= p <= high
                ]
                assert not wild, f"{host}: listening on every interface: {wild}"
            to_decode = {p for addr, p in hosts.connections("pa") if addr == a["dec"]}
            transfer = sorted(p for p in to_decode if low <= p <= high)
            assert transfer, f"no connection from prefill to a decode port in {low}-{high}: {to_decode}"
            record_property("transfer_ports_used", json.dumps(transfer))
            print(
                f"{backend}: up in {time.monotonic() - t0:.1f} s; prefill -> decode transfer ports {transfer}"
            )

            # A prefill server on another host joins through the admin API (from the gateway's host).
            admin = {"Authorization": "Bearer admin"}
            local = f"http://127.0.0.1:{PORT}"
            removed, joined = client.calls(
                [
                    {
                        "method": "POST",
                        "url": f"{local}/admin/remove",
                        "body": {"url": chat_url},
                        "headers": admin,
                    },
                    {
                        "method": "POST",
                        "url": f"{local}/admin/prefill",
                        "body": {"task": "chat", "url": chat_url, "bootstrap_port": FIRST_PORT + 502},
                        "headers": admin,
                    },
                ]
            )
            assert removed["status"] == 200 and joined["status"] == 200, (removed, joined)
            answer = client.generate(gateway, "chat", ids)
            assert answer["status"] == 200 and answer["body"]["output_ids"] == want["chat"], answer
        finally:
            codes = _stop(procs)
        for name in ("dec", "pa", "pb", "gw"):
            print(f"--- {name}: {(tmp_path / f'launcher-{name}.out').read_text()[-600:]}")
        assert codes["gw"] == 0, codes
