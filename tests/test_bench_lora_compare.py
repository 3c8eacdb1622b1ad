"""bench lora-compare's pieces that need no server: the single multi-LoRA server's command line
and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sun_sglang.bench import lora_compare
from sun_sglang.bench.lora_scale import lora_cluster
from sun_sglang.launch.config import ClusterConfig, CpuPins, TaskConfig


def test_the_single_server_is_the_planned_prefill_server_not_disaggregated_on_the_decode_core(
    tiny_base: Path, tiny_adapters: list[Path]
) -> None:
    config = lora_cluster(tiny_base, tiny_adapters, 4, CpuPins(prefill="0", decode="1", gateway="0"), 37000)
    argv = lora_compare.single_spec(config, 37500).argv()
    assert argv[:3] == ["taskset", "-c", "1"]
    flag = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
    assert flag["--disaggregation-mode"] == "null" and "--disaggregation-bootstrap-port" not in flag
    assert (flag["--port"], flag["--served-model-name"], flag["--max-lora-rank"]) == ("37500", "base", "4")
    assert flag["--decode-log-interval"] == "1" and flag["--lora-backend"] == "torch_native"
    paths = argv[argv.index("--lora-paths") + 1 : argv.index("--lora-paths") + 3]
    assert paths == [f"task{i:02d}={p}" for i, p in enumerate(tiny_adapters)]


def test_the_report_has_every_case_and_mix() -> None:
    def case(step_s: float) -> dict:
        mixes = [(b, min(a, 4)) for b, a in lora_compare.MIXES]  # as measured with 4 tasks
        profile = [{"batch": b, "adapters": a, "step_s": step_s * (1 + a / 10)} for b, a in mixes]
        figures = {"output_tok_s": 12.5, "errors": 0}
        figures |= {"ttft_s": {"p50": 0.5, "p90": 0.9}, "tpot_s": {"p50": 0.04, "p90": 0.05}}
        return {"profile": profile, "summary": figures}

    result = {"runs": [{"adapters": 4, "sun": case(0.03), "multi_lora": case(0.05), "single": case(0.06)}]}
    text = lora_compare.report(result)
    assert "| 4 | multi_lora | 55.0 ms, 18 tok/s |" in text  # batch 1, 1 adapter: 0.05 x 1.1
    assert "| 42.0 ms, 190 tok/s (4 adapters) |" in text  # sun, batch 8 over the 4: 0.03 x 1.4
    assert "| 4 | single | 12.5 | 0.50 / 0.90 | 40 / 50 | 0 |" in text
    assert text.count("| 4 |") == 7
    # SUN's batch 8 over 4 adapters takes 42 ms: the others' batch 1 is slower (55, 66 ms)
    assert "| 4 | 42 ms | 190 (1.00x) | cannot hold it | cannot hold it |" in text


def test_the_batch_within_a_tpot_is_interpolated_on_the_most_mixed_steps() -> None:
    profile = [
        {"batch": 1, "adapters": 1, "step_s": 0.10},
        {"batch": 4, "adapters": 1, "step_s": 0.11},  # one adapter: not the line
        {"batch": 4, "adapters": 4, "step_s": 0.16},
        {"batch": 8, "adapters": 4, "step_s": 0.24},  # 4 tasks: batch 8 over all four
    ]
    assert lora_compare.batch_within(profile, 0.20) == pytest.approx(6.0)
    assert lora_compare.batch_within(profile, 0.13) == pytest.approx(2.5)
    assert lora_compare.batch_within(profile, 0.05) is None  # even batch 1 is slower
    assert lora_compare.batch_within(profile, 0.30) == 8.0  # no more than measured
    flat = [*profile[:3], {"batch": 8, "adapters": 4, "step_s": 0.16}]
    assert lora_compare.batch_within(flat, 0.16) == 8.0  # the largest batch within it


def test_each_case_is_saved_as_it_finishes_and_a_rerun_goes_on_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[tuple[int, str]] = []
    saved_before: list[list] = []

    def case(n: int, name: str) -> dict:
        saved = tmp_path / "lora_compare.json"
        saved_before.append(json.loads(saved.read_text())["runs"] if saved.exists() else [])
        ran.append((n, name))
        return {"case": name}

    monkeypatch.setattr(lora_compare, "prepare", lambda name: Path("base"))
    monkeypatch.setattr(lora_compare, "make_adapters", lambda base, n, rank, out: list(range(n)))

    def cluster(base: Path, paths: list, rank: int, pins: CpuPins, port: int) -> ClusterConfig:
        return ClusterConfig(base="base", tasks={f"task{i:02d}": TaskConfig(model_path="m") for i in paths})

    def pd_case(mode: str, config: ClusterConfig, workload: object, log_dir: Path) -> dict:
        assert config.max_total_tokens == lora_compare.KV_TOKENS  # batch 8 fits the pre-allocation
        return case(len(config.tasks), mode)

    monkeypatch.setattr(lora_compare, "lora_cluster", cluster)
    monkeypatch.setattr(lora_compare, "pd_case", pd_case)
    monkeypatch.setattr(lora_compare, "single_case", lambda c, w, log_dir, port: case(len(c.tasks), "single"))
    pins = CpuPins(prefill="0", decode="1", gateway="0")
    args = ([4, 16], 16, lora_compare.DEFAULT_WORKLOAD, tmp_path, pins)
    (tmp_path / "lora_compare.json").write_text(
        json.dumps({"workload": "other settings", "runs": [{"adapters": 4, "sun": {}}]})
    )
    first = lora_compare.lora_compare(*args)
    assert ran == [(n, c) for n in (4, 16) for c in lora_compare.CASES]  # other settings: all run again
    assert saved_before[1] == [{"adapters": 4, "sun": {"case": "sun"}}]  # the first case saved at once
    assert json.loads((tmp_path / "lora_compare.json").read_text()) == first

    ran.clear()
    del first["runs"][1]["single"]  # as if the run had stopped during the last case
    (tmp_path / "lora_compare.json").write_text(json.dumps(first))
    again = lora_compare.lora_compare(*args)
    assert ran == [(16, "single")] and again["runs"][1]["single"] == {"case": "single"}
