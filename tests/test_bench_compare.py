"""The side-by-side benchmark's evidence: decode batch composition from the gateway's access log,
the decode servers' largest batch from their logs, and the ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sun_sglang.bench.compare import cpu_set, decode_mixing, most_running, ratios


def _line(task: str, decode: str, ts: float, ttft_ms: float, latency_ms: float, status: int = 200) -> str:
    rec = {"ts": ts, "task": task, "decode": decode, "ttft_ms": ttft_ms, "latency_ms": latency_ms}
    return json.dumps({**rec, "status": status})


def test_decode_mixing_measures_time_with_two_tasks_in_one_batch(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text(
        "\n".join(
            [
                "some text line from the gateway",
                _line("a", "d0", 0.0, 0, 4000),  # a decodes on d0 over [0, 4]
                _line("b", "d0", 1.0, 1000, 3000),  # b over [2, 4]: mixed half of d0's busy time
                _line("b", "d1", 0.0, 0, 2000),  # d1 only ever sees b
                _line("a", "d1", 0.0, 0, 9000, status=502),  # failed: not counted
            ]
        )
        + "\n"
    )
    mix = decode_mixing(log)
    assert mix["d0"] == {"mixed_time_share": pytest.approx(0.5), "most_tasks_at_once": 2}
    assert mix["d1"] == {"mixed_time_share": 0.0, "most_tasks_at_once": 1}


def test_most_running_reads_sglang_decode_log_lines(tmp_path: Path) -> None:
    log = tmp_path / "decode-0.log"
    log.write_text(
        "[t] Decode batch, #running-req: 3, #token: 328, token usage: 0.08\n"
        "[t] Decode batch [1], #running-req: 11, #token: 9\n[t] Prefill batch, #new-seq: 2\n"
    )
    assert most_running(log) == 11
    log.write_text("nothing here\n")
    assert most_running(log) == 0


def test_ratios_and_cpu_lists() -> None:
    def run(tok: float, per_decode: float, tpot: float) -> dict:
        s = {
            "output_tok_s": tok,
            "output_tok_s_per_decode_worker": per_decode,
            "output_tok_s_per_worker": tok / 3,
        }
        return {"summary": {**s, "tpot_s": {"p50": tpot, "p90": tpot}, "ttft_s": {"p50": 1.0}}}

    r = ratios(run(30.0, 30.0, 0.1), run(20.0, 10.0, 0.2))
    assert r["output_tok_s"] == 1.5 and r["output_tok_s_per_decode_worker"] == 3.0 and r["tpot_p50"] == 0.5
    assert cpu_set("0,2-4") == {0, 2, 3, 4}
