"""Paper scale, adapter tasks: the fewest decode GPUs that hold the SLO when every task is a LoRA
adapter of one base, served the ways a user could pick (sim.lora's cost model and its sources):

- conventional: each adapter merged into its own full model, a decode pool per task (sweep);
- multi_lora: SGLang `--enable-lora` on both legs, one shared decode pool whose steps run the
  batch's adapters, at most 8 distinct ones per batch (SGLang's default `--max-loras-per-batch`);
- multi_lora_all: the same with room for every adapter in a batch (S-LoRA style), their weights
  held on each decode GPU (taken from its KV memory);
- sun_lora: the adapters on the prefill servers only, the plain base decoding (SUN-LoRA);
- qsun8 / qsun4: sun_lora with a W8A16 / W4A16 base on the decode GPUs (QSUN). multi-LoRA has no
  such variant: its adapters were trained on the bf16 base, which QSUN's prefill modules are not.

Every mode but conventional has one shared multi-LoRA prefill pool (adapters mix in prefill
batches) sized for the whole prompt load at 70% busy; conventional has a pool per task, as in
`sweep`. Throughput is the same served load in every mode, so per-GPU figures are GPU-count ratios.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from sun_sglang.bench import summary
from sun_sglang.bench.loadgen import Record
from sun_sglang.sim import sweep
from sun_sglang.sim.costs import GPUS, MODELS, Roofline
from sun_sglang.sim.engine import Simulator
from sun_sglang.sim.lora import LoraDecodeCost
from sun_sglang.sim.qsun import weight_bytes_per_param
from sun_sglang.sim.shape import ClusterShape, SimRequest
from sun_sglang.sim.sweep import SLO, Point, Slo

ADAPTERS = (4, 16, 64, 256)
ALPHAS = (0.0, 1.0, 2.0)
MODES = ("conventional", "multi_lora", "multi_lora_all", "sun_lora", "qsun8", "qsun4")


def decode_side(mode: str, base: Roofline, tasks: int) -> tuple[object, int]:
    """The decode cost and KV capacity (tokens per decode GPU) of a shared-pool mode."""
    m = base.model
    if mode in ("qsun8", "qsun4"):
        low = Roofline(base.gpu, m, weight_bytes=weight_bytes_per_param(m, int(mode[-1])))
        return low, low.kv_capacity_tokens()
    if mode == "sun_lora":
        return base, base.kv_capacity_tokens()
    lora = LoraDecodeCost(base, max_adapters=8 if mode == "multi_lora" else tasks)
    held = min(tasks, lora.max_adapters) * lora.adapter_bytes()
    return lora, base.kv_capacity_tokens() - int(held / m.kv_bytes_per_token(base.kv_bytes))


def solve(point: Point, slo: Slo = SLO, seed: int = 0) -> dict:
    base = Roofline(GPUS[point.gpu], MODELS[point.model])
    prefill_cost = LoraDecodeCost(base)  # a multi-LoRA prefill server: the adapters' extra FLOPs
    reqs = sweep.requests(point, seed)
    share = sweep.shares(point, reqs)
    names = list(share)
    row: dict = {**msgspec.to_builtins(point)}

    per_task = {
        t: sweep.prefill_gpus(point.rate * share[t], base.prefill_s([point.prompt_tokens])) for t in names
    }
    common = dict(kv_capacity_tokens=base.kv_capacity_tokens(), prefill_workers=per_task)
    decode, _, conv = sweep.conventional(reqs, share, common, base, slo, seed)
    row["conventional"] = sweep.figures(conv, decode, sum(per_task.values()))

    shared_prefill = sweep.prefill_gpus(point.rate, prefill_cost.prefill_s([point.prompt_tokens]))
    for mode in MODES[1:]:
        row[mode] = _shared_pool(mode, base, prefill_cost, shared_prefill, reqs, names, slo, seed)
    return row


def _shared_pool(
    mode: str,
    base: Roofline,
    prefill_cost: LoraDecodeCost,
    prefill: int,
    reqs: list[SimRequest],
    names: list[str],
    slo: Slo,
    seed: int,
) -> dict:
    """One shared decode pool (every mode but conventional), sized to the SLO: its figures."""
    cost, kv = decode_side(mode, base, len(names))
    shape_mode = "multi_lora" if mode.startswith("multi_lora") else "sun"

    def simulate(d: int) -> tuple[list[Record], float]:
        shape = ClusterShape(
            tasks=names,
            mode=shape_mode,  # type: ignore[arg-type]
            decode_workers=d,
            shared_prefill_workers=prefill,
            kv_capacity_tokens=kv,
        )
        return Simulator(shape, prefill_cost, cost, seed=seed).run(reqs)  # type: ignore[arg-type]

    try:
        d = sweep.fewest(lambda d: sweep.meets_slo(*simulate(d), slo), limit=LIMIT)
    except RuntimeError:  # no pool holds the SLO: every step over the TPOT bound
        return {"decode_gpus": None}
    records, wall = simulate(d)
    return {
        **sweep.figures(summary.summarize(records, wall, d, 1), d, prefill),
        "distinct_adapters_cap": getattr(cost, "max_adapters", 0),
    }


LIMIT = 256  # decode GPUs: a mode that needs more does not hold the SLO at all
RATE = 256.0  # req/s: pools of several decode GPUs, so that GPU counts are not all rounding


def points(gpu: str = "H100", model: str = "Llama-3.1-8B") -> list[Point]:
    return [Point(gpu, model, n, a, RATE, 256, requests=int(30 * RATE)) for n in ADAPTERS for a in ALPHAS]


def run(out_dir: Path, slo: Slo = SLO, progress: bool = True) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, p in enumerate(points()):
        rows.append(solve(p, slo))
        if progress:
            print(f"lora sweep {i + 1}/{len(points())}", flush=True)
    data = {"slo": msgspec.to_builtins(slo), "modes": list(MODES), "rows": rows}
    (out_dir / "lora_sweep.json").write_text(json.dumps(data, indent=1))
    plot(data, out_dir)
    return data


LABELS = {
    "conventional": "conventional (a merged model per task)",
    "multi_lora": "multi-LoRA PD (8 adapters a batch)",
    "multi_lora_all": "multi-LoRA PD (every adapter a batch)",
    "sun_lora": "SUN-LoRA (base decode)",
    "qsun8": "QSUN-LoRA, W8A16 decode",
    "qsun4": "QSUN-LoRA, W4A16 decode",
}


def plot(data: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = sorted({r["alpha"] for r in data["rows"]})
    fig, axes = plt.subplots(1, len(alphas), figsize=(4.2 * len(alphas), 4), sharey=True)
    for ax, alpha in zip(axes, alphas):
        rows = sorted((r for r in data["rows"] if r["alpha"] == alpha), key=lambda r: r["tasks"])
        for mode in data["modes"]:
            tok_s = [r[mode].get("tok_s_per_decode_gpu", float("nan")) for r in rows]  # nan: none holds
            ax.plot([r["tasks"] for r in rows], tok_s, "o-")
        ax.set(xscale="log", title=f"Zipf alpha {alpha:g}", xlabel="adapters (tasks)")
    p = data["rows"][0]
    axes[0].set_ylabel(
        f"output tok/s per decode GPU\n({p['gpu']}, {p['model']}, {p['rate']:g} req/s, same SLO)"
    )
    axes[-1].legend([LABELS[m] for m in data["modes"]], fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "lora_per_decode_gpu.png", dpi=110)
    plt.close("all")


def section(data: dict, bound: tuple[int, float]) -> list[str]:
    """The page's section; `bound`: the roofline's (batch, tok/s per decode GPU) at the TPOT SLO."""
    slo, point = data["slo"], data["rows"][0]
    out = [
        "## Adapter tasks at paper scale: SUN-LoRA against multi-LoRA serving (simulated, issue 19)",
        "",
        f"{point['gpu']}, {point['model']} bf16, rank-16 adapters on q/k/v/o/gate/up/down, "
        f"{point['rate']:g} req/s ({point['requests']} requests), prompts 512-1536 tokens, outputs "
        f"128-384. Each mode's decode pool is the fewest GPUs holding TPOT p90 <= "
        f"{slo['tpot_p90_s'] * 1e3:.0f} ms and TTFT p90 <= {slo['ttft_p90_s']:.1f} s; the decode "
        "policy is the gateway's least_load, which does not look at adapters. The LoRA step cost and its "
        "sources: `sun_sglang/sim/lora.py` (Punica's measured SGMV growth and fixed overhead, or reading "
        "the batch's adapters' weights, whichever is longer). Cells: output tok/s per decode GPU (decode "
        f"GPUs; TPOT p90 ms). The bound: at 1280 tokens of context the roofline fits a batch of {bound[0]} "
        f"in the TPOT SLO, {bound[1]:.0f} output tok/s per decode GPU.",
        "",
        "| adapters | alpha | " + " | ".join(LABELS[m] for m in data["modes"]) + " | SUN-LoRA / multi-LoRA |",
        "|---|---|" + "---|" * (len(data["modes"]) + 1),
    ]
    for r in sorted(data["rows"], key=lambda r: (r["tasks"], r["alpha"])):
        cells = [_cell(r[m]) for m in data["modes"]]
        sun, multi = r["sun_lora"], r["multi_lora"]
        gain = (
            "-"
            if None in (sun["decode_gpus"], multi["decode_gpus"])
            else (f"{sun['tok_s_per_decode_gpu'] / multi['tok_s_per_decode_gpu']:.2f}x")
        )
        out.append(f"| {r['tasks']} | {r['alpha']:g} | " + " | ".join(cells) + f" | {gain} |")
    out += ["", "![tok/s per decode GPU by adapters](performance/lora_per_decode_gpu.png)", ""]
    return out


def _cell(figures: dict) -> str:
    if figures["decode_gpus"] is None:
        return f"none up to {LIMIT} GPUs"
    return (
        f"{figures['tok_s_per_decode_gpu']:.0f} ({figures['decode_gpus']}; {figures['tpot_p90_s'] * 1e3:.1f})"
    )
