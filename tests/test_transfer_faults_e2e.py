"""KV transfers that fail mid-request, on a real cluster: SGLang's own test-only injector on the
decode server (SGLANG_TEST_DISAGG_FAILURE_PROB: each poll of a transfer reports failure with this
probability). The decode scheduler polls a transfer in flight many times, so at 0.002 nearly every
transfer between the prefill servers and the shared decode server fails."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cluster_util import start_cluster
from tests.test_faults_e2e import _chat, _decode_holds_nothing, _within

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    faulty = "decode_env: {SGLANG_TEST_DISAGG_FAILURE_PROB: '0.002'}\n"
    running = start_cluster(tmp_path_factory.mktemp("transfer"), "mooncake_tcp", extra_yaml=faulty)
    try:
        yield running
    finally:
        running.stop()


def test_failed_transfers_end_in_clear_errors_and_free_the_decode_server(cluster, record_property) -> None:  # noqa: ANN001
    jobs = ["math", "chat"] * 8
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda task: _chat(cluster, task, max_tokens=8), jobs))
    failed = [(status, data, took) for status, data, took, _ in results if status != 200]
    record_property("statuses", dict(Counter(r[0] for r in results)))
    assert failed, "the injector cut no transfer"
    for status, data, took in failed:
        assert status == 502 and data["error"]["type"] == "upstream_error", data
        assert "transfer" in data["error"]["message"].lower() and took < 30, (data, took)
    record_property(
        "client_error", f"{failed[0][0]} after {failed[0][2]:.1f} s: {failed[0][1]['error']['message'][:160]}"
    )
    t0 = time.monotonic()
    (decode,) = cluster.plan.decode
    freed = _within(lambda: _decode_holds_nothing(cluster, decode.url), 60)
    assert freed is not None
    record_property("decode_free_after_s", round(time.monotonic() - t0, 1))
