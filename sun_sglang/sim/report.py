"""docs/PERFORMANCE.md, written from the data files the benchmarks and the simulator leave in one
folder: cpu_compare-NAME.json (`python -m sun_sglang.sim validate`), multi_turn.json
(`python -m sun_sglang.bench.multi_turn`) and sweep.json (`... sim sweep`).
Everything below NOTES_MARK in an existing page is kept (hand-written reading)."""

from __future__ import annotations

import json
from pathlib import Path

from sun_sglang.bench import multi_turn
from sun_sglang.bench.summary import decode_workers
from sun_sglang.sim import lora_sweep, ttft
from sun_sglang.sim.costs import GPUS, MODELS, Roofline

NOTES_MARK = "<!-- notes: kept by python -m sun_sglang.sim report -->"


def cpu_summary(result: dict, validation: dict) -> dict:
    """What the page needs from a compare run (not its per-request records)."""
    keep = (
        "mode",
        "decode_replicas",
        "workers",
        "summary",
        "per_task",
        "decode_mixing",
        "decode_most_running",
        "ttft_stages",
    )
    return {
        "workload": result["workload"],
        "pins": result["pins"],
        "machine": result.get("machine"),
        "versions": result.get("versions"),
        "sun": {k: result["sun"][k] for k in keep if k in result["sun"]},
        "conventional": {k: result["conventional"][k] for k in keep if k in result["conventional"]},
        "ratios_sun_over_conventional": result["ratios_sun_over_conventional"],
        "validation": validation,
    }


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.0f}"


def _cpu_section(cpu: dict, name: str) -> list[str]:
    w = cpu["workload"]
    out = [
        f"## CPU cluster, run `{name}`: SUN against conventional, side by side",
        "",
        f"Machine: {cpu['machine']['platform']}, {cpu['machine']['cpus']} cores. SmolLM2-135M float32, "
        f"tasks {', '.join(w['tasks'])}; taskset: prefill servers, gateway and load generator on CPU "
        f"{cpu['pins']['prefill']}, every decode server on CPU {cpu['pins']['decode']} (both modes get "
        f"the same decode core). Workload: {w['num_requests']} requests, {w['popularity']} popularity (alpha "
        f"{w['zipf_alpha']}), {w['arrival']} arrivals at {w['rate']} req/s (client cap {w['concurrency']}), "
        f"prompts {w['prompt_words']['low']}-{w['prompt_words']['high']} words, {w['output_tokens']['low']} "
        f"output tokens (ignore_eos), seed {w['seed']}.",
        "",
        "| mode | decode servers | errors | req/s | out tok/s | per decode server | TTFT p50/p90 ms "
        "| TPOT p50/p90 ms | latency p50 s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("sun", "conventional"):
        run, s = cpu[mode], cpu[mode]["summary"]
        decode = decode_workers(run["workers"])
        out.append(
            f"| {mode} | {decode} | {s['errors']} | {s['req_s']:.2f} | {s['output_tok_s']:.1f} | "
            f"{s['output_tok_s_per_decode_worker']:.1f} | "
            f"{_ms(s['ttft_s']['p50'])}/{_ms(s['ttft_s']['p90'])} | "
            f"{_ms(s['tpot_s']['p50'])}/{_ms(s['tpot_s']['p90'])} | {s['latency_s']['p50']:.2f} |"
        )
    r = cpu["ratios_sun_over_conventional"]
    out += [
        "",
        f"SUN / conventional: output tok/s {r['output_tok_s']:.2f}x, per decode server "
        f"{r['output_tok_s_per_decode_worker']:.2f}x, per server {r['output_tok_s_per_worker']:.2f}x, "
        f"TPOT p50 {r['tpot_p50']:.2f}x, p90 {r['tpot_p90']:.2f}x, TTFT p50 {r['ttft_p50']:.2f}x.",
        "",
        "Decode batch composition (gateway access log: which task decoded on which server, when; "
        "SGLang decodes all running requests of a server in one batch per step):",
        "",
    ]
    for mode in ("sun", "conventional"):
        for server, mix in cpu[mode]["decode_mixing"].items():
            out.append(
                f"- {mode}, {server}: two or more tasks in the batch {mix['mixed_time_share']:.0%} of its "
                f"decoding time, at most {mix['most_tasks_at_once']} tasks at once"
            )
        most = ", ".join(f"{k} {v}" for k, v in cpu[mode]["decode_most_running"].items())
        out.append(f"- {mode}: largest `#running-req` in the decode servers' logs: {most}")
    return out + [""]


def _steps(profile: dict) -> str:
    pairs = zip(profile["decode_batches"], profile["decode_seconds"], strict=True)
    return ", ".join(f"{b:.0f}: {s * 1e3:.0f} ms" for b, s in pairs)


def _validation_section(val: dict) -> list[str]:
    cals = val["calibrations"]
    closed = cals["closed-loop profile"]["profile"]
    prefill = ", ".join(
        f"{n:.0f} tokens: {s * 1e3:.0f} ms" for n, s in zip(closed["prefill_lens"], closed["prefill_seconds"])
    )
    out = [
        "### The simulator against this run",
        "",
        "The simulator replays each run's requests (planned arrivals, counted prompt lengths) through the"
        " same cluster shape, servers sharing their pinned core"
        + (
            f"; decode servers sharing a core lose {val['decode_core_overhead']:.2f}x beyond an even split "
            "(measured on the conventional cluster: both tasks at once, one request each)."
            if val.get("decode_core_overhead", 1.0) != 1.0
            else " evenly."
        )
        + f" Prefill by prompt length (closed loops): {prefill}. Decode step by batch size, per calibration:",
        "",
    ]
    out += [f"- {name} ({c['profile']['source']}): {_steps(c['profile'])}" for name, c in cals.items()]
    names = list(cals)
    out += [
        "",
        "| mode | figure | measured | " + " | ".join(f"{n}: predicted (error)" for n in names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    first = cals[names[0]]["modes"]
    for mode, figures in first.items():
        for fig, f in figures.items():
            cells = []
            for n in names:
                g = cals[n]["modes"][mode][fig]
                err = "-" if g["error"] is None else f"{g['error']:+.1%}"
                cells.append(f"{g['predicted']:.4g} ({err})")
            out.append(f"| {mode} | {fig} | {f['measured']:.4g} | " + " | ".join(cells) + " |")
    out += ["", "SUN / conventional, measured vs predicted:", ""]
    for n in names:
        ratios = cals[n]["sun_over_conventional"]
        out.append(
            f"- {n}: "
            + ", ".join(f"{k} {v['measured']:.2f}x vs {v['predicted']:.2f}x" for k, v in ratios.items())
        )
    return out + [""]


def decode_bound_tok_s(gpu: str, model: str, tpot_s: float, context: int) -> tuple[int, float]:
    """The roofline's best decode throughput of one GPU under a TPOT bound: the largest batch
    whose step fits in tpot_s (and in KV memory) at `context` tokens per request."""
    cost = Roofline(GPUS[gpu], MODELS[model])
    best = 0
    for b in range(1, 4097):
        if cost.decode_step_s(b, b * context) > tpot_s or b * context > cost.kv_capacity_tokens():
            break
        best = b
    return best, best / cost.decode_step_s(best, best * context) if best else 0.0


def _sweep_section(sweep: dict) -> list[str]:
    slo = sweep["slo"]
    out = [
        "## Paper scale (simulated, roofline)",
        "",
        f"{sweep['model']} bf16, one GPU per server. SLO: TPOT p90 <= {slo['tpot_p90_s'] * 1e3:.0f} ms and "
        f"TTFT p90 <= {slo['ttft_p90_s']:.1f} s. Prompts 512-1536 tokens, outputs 128-384 unless stated, "
        "Poisson arrivals, Zipf popularity over tasks. Prefill GPUs per task: enough for its prompt load at "
        "70% busy, at least one, the same in both modes. Conventional: each task's decode pool sized "
        "alone (at least one GPU). SUN: the shared pool sized (a) for the same SLO, (b) so that its TPOT "
        "p90 stays within 5% of conventional's. Gain = SUN's output tok/s per GPU (prefill + decode) over "
        "conventional's, at the same served load.",
        "",
    ]
    for gpu in ("H100", "H200"):
        rows = [r for r in sweep["skew"] if r["gpu"] == gpu]
        alphas = sorted({r["alpha"] for r in rows})
        out += [
            f"### {gpu}, 64 req/s: gain per GPU, TPOT within 5% (same SLO in brackets); decode GPUs conv/SUN",
            "",
            "| tasks | " + " | ".join(f"alpha {a:g}" for a in alphas) + " |",
            "|---|" + "---|" * len(alphas),
        ]
        for n in sorted({r["tasks"] for r in rows}):
            cells = []
            for a in alphas:
                (r,) = [r for r in rows if r["tasks"] == n and r["alpha"] == a]
                cells.append(
                    f"{r['sun_tpot_5pct_gain_per_gpu']:.2f}x ({r['sun_same_slo_gain_per_gpu']:.2f}x); "
                    f"{r['conventional']['decode_gpus']}/{r['sun_tpot_5pct']['decode_gpus']}"
                )
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        out.append("")
    best, ctx = decode_bound_tok_s("H100", sweep["model"], slo["tpot_p90_s"], 1280), 1280
    out += [
        "### H100, 16 tasks, Zipf 1.0: load",
        "",
        f"Bound: at {ctx} tokens of context per request the roofline fits a batch of {best[0]} in the TPOT "
        f"SLO, {best[1]:.0f} output tok/s per decode GPU; the figures below are against it.",
        "",
        "| req/s | decode GPUs conv | SUN same SLO | SUN TPOT 5% | tok/s per decode GPU conv | SUN (5%) "
        "| % of bound (SUN 5%) | gain per GPU (5%) | TPOT p90 ms conv / SUN (5%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sweep["load"]:
        c, s5, ss = r["conventional"], r["sun_tpot_5pct"], r["sun_same_slo"]
        out.append(
            f"| {r['rate']:g} | {c['decode_gpus']} | {ss['decode_gpus']} | {s5['decode_gpus']} | "
            f"{c['tok_s_per_decode_gpu']:.0f} | {s5['tok_s_per_decode_gpu']:.0f} | "
            f"{s5['tok_s_per_decode_gpu'] / best[1]:.0%} | {r['sun_tpot_5pct_gain_per_gpu']:.2f}x | "
            f"{_ms(c['tpot_p90_s'])} / {_ms(s5['tpot_p90_s'])} |"
        )
    out += [
        "",
        "### H100, 16 tasks, Zipf 1.0, 64 req/s: output length",
        "",
        "| mean output tokens | decode GPUs conv / SUN (5%) | gain per GPU (5%) | (same SLO) |",
        "|---|---|---|---|",
    ]
    for r in sweep["output"]:
        out.append(
            f"| {r['output_tokens']} | "
            f"{r['conventional']['decode_gpus']} / {r['sun_tpot_5pct']['decode_gpus']} | "
            f"{r['sun_tpot_5pct_gain_per_gpu']:.2f}x | {r['sun_same_slo_gain_per_gpu']:.2f}x |"
        )
    out += [
        "",
        "![gain vs skew](performance/throughput_per_gpu_vs_skew.png)",
        "![decode GPUs vs load](performance/decode_gpus_vs_load.png)",
        "![TPOT CDF](performance/tpot_cdf.png)",
        "",
    ]
    return out


def write(data_dir: Path, doc: Path) -> None:
    notes = ""
    if doc.exists() and NOTES_MARK in doc.read_text():
        notes = doc.read_text().split(NOTES_MARK, 1)[1]
    lines = [
        "# Performance",
        "",
        "Generated by `python -m sun_sglang.sim report` from the data in `docs/performance/`. Rerun:",
        "",
        "```",
        "python -m sun_sglang.bench compare --cluster launch/local-smollm2.yaml --popularity zipf \\",
        "    --zipf-alpha 1.0 --rate 1.0 --num-requests 80 --concurrency 16 --output-tokens 32 \\",
        "    --prompt-words 32:64 --seed 0 --out-dir /tmp/zipf1   # CPU cluster, ~10 min",
        "python -m sun_sglang.bench compare --cluster launch/local-smollm2.yaml --popularity uniform \\",
        "    --rate 0.5 --num-requests 60 --concurrency 16 --output-tokens 32 \\",
        "    --prompt-words 32:64 --seed 1 --out-dir /tmp/uniform  # CPU cluster, ~8 min",
        "python -m sun_sglang.sim validate --compare /tmp/zipf1/result.json --name zipf1-rate1 \\",
        "    --steps-from /tmp/uniform/result.json --steps-from-name uniform-rate05",
        "python -m sun_sglang.sim validate --compare /tmp/uniform/result.json --name uniform-rate05 \\",
        "    --steps-from /tmp/zipf1/result.json --steps-from-name zipf1-rate1",
        "python -m sun_sglang.sim sweep                          # paper scale, a few minutes",
        "python -m sun_sglang.sim lora-sweep                     # adapter tasks, about 30 min",
        "python -m sun_sglang.sim report",
        "```",
        "",
    ]
    for path in sorted(data_dir.glob("cpu_compare-*.json")):
        cpu = json.loads(path.read_text())
        lines += _cpu_section(cpu, path.stem.split("-", 1)[1]) + _validation_section(cpu["validation"])
        if "first_token" in cpu["validation"]:
            lines += ttft.section(cpu["validation"]["first_token"])
    if (data_dir / "multi_turn.json").exists():
        lines += multi_turn.section(json.loads((data_dir / "multi_turn.json").read_text()))
    if (data_dir / "sweep.json").exists():
        lines += _sweep_section(json.loads((data_dir / "sweep.json").read_text()))
    if (data_dir / "lora_sweep.json").exists():
        lora = json.loads((data_dir / "lora_sweep.json").read_text())
        first = lora["rows"][0]
        bound = decode_bound_tok_s(first["gpu"], first["model"], lora["slo"]["tpot_p90_s"], 1280)
        lines += lora_sweep.section(lora, bound)
    doc.write_text("\n".join(lines) + "\n" + NOTES_MARK + (notes or "\n"))
