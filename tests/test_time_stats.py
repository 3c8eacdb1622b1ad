"""SGLang's per-request time stats (the servers' logs) joined into first-token stages."""

from __future__ import annotations

from sun_sglang.bench import time_stats

PREFILL = (
    "[2026-12-02 03:00:00] ReqTimeStats(rid=a.01, bootstrap_room=7, input_len=40, cached_input_len=0,"
    " output_len=1, attempts=1, type=prefill): bootstrap_duration=12.50ms, queue_duration=0.40ms,"
    " forward_duration=98.00ms, entry_time=1000.000, transfer_speed=0.10 GB/s, transfer_total=1.80 MB\n"
    "[2026-12-02 03:00:01] ReqTimeStats(rid=b.02, bootstrap_room=8, input_len=90, cached_input_len=0,"
    " output_len=1, attempts=1, type=prefill): bootstrap_duration=3.00ms, queue_duration=50.00ms,"
    " forward_duration=180.00ms, entry_time=1001.000, transfer_speed=0.10 GB/s, transfer_total=4.00 MB\n"
)
DECODE = (
    "[2026-12-02 03:00:02] ReqTimeStats(rid=a.01, bootstrap_room=7, input_len=40, cached_input_len=0,"
    " output_len=32, attempts=1, type=decode): bootstrap_duration=80.00ms, alloc_wait_duration=0.10ms,"
    " transfer_duration=120.00ms, queue_duration=60.00ms, forward_duration=2.50s, entry_time=999.990\n"
    "[2026-12-02 03:00:03] ReqTimeStats(rid=c.03, bootstrap_room=9, input_len=10, cached_input_len=0,"
    " output_len=32, attempts=1, type=decode): bootstrap_duration=1.00ms, alloc_wait_duration=0.10ms,"
    " transfer_duration=1.00ms, queue_duration=1.00ms, forward_duration=1.00s, entry_time=1002.000\n"
)


def test_lines_parse_to_seconds() -> None:
    rows = time_stats.parse(PREFILL)
    assert set(rows) == {"a.01", "b.02"}
    assert rows["a.01"]["forward_duration"] == 0.098 and rows["a.01"]["input_len"] == 40
    assert time_stats.parse(DECODE)["a.01"]["forward_duration"] == 2.5  # seconds stay seconds


def test_legs_join_by_rid_and_summarize() -> None:
    by_rid = time_stats.stages([PREFILL], [DECODE])
    assert list(by_rid) == ["a.01"]  # b: no decode line; c: no prefill line
    a = by_rid["a.01"]
    assert a["handshake"] == 0.08 and a["kv_wait"] == 0.12 and a["pickup"] == 0.06
    assert a["prefill_forward"] == 0.098 and a["prompt_tokens"] == 40
    assert (a["prefill_entry"], a["decode_entry"]) == (1000.0, 999.99)  # to place it in time
    assert (a["prefill_server"], a["decode_server"], a["decode_forward"]) == (0, 0, 2.5)
    assert (a["transfer_total"], a["transfer_speed"]) == (1.8, 0.1)
    two = time_stats.stages(["", PREFILL], [DECODE])  # the second prefill server's log
    assert two["a.01"]["prefill_server"] == 1
    assert time_stats.stages([PREFILL], [DECODE], since=1000.5) == {}  # entered before the load
    s = time_stats.summary(by_rid)
    assert s["pickup"] == {"n": 1, "p50": 0.06, "p90": 0.06}
