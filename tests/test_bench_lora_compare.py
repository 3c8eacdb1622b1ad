"""bench lora-compare's pieces that need no server: the single multi-LoRA server's command line
and the report."""

from __future__ import annotations

from pathlib import Path

from sun_sglang.bench import lora_compare
from sun_sglang.bench.lora_scale import lora_cluster
from sun_sglang.launch.config import CpuPins


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
    assert text.count("| 4 |") == 6
