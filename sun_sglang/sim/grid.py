"""The paper-scale sweep: which points are solved, and the plots drawn from them.

Three slices through (tasks, Zipf alpha, request rate, output length), Llama-3.1-8B in bf16:
skew (every task count and alpha, at one rate, on H100 and H200), load (one task count and alpha,
rates from light to saturating) and output length; plus the TPOT distributions of one point."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from sun_sglang.sim.sweep import SLO, Point, Slo, solve

MODEL = "Llama-3.1-8B"
TASKS = (2, 4, 8, 16, 32, 64)
ALPHAS = (0.0, 0.5, 1.0, 1.5, 2.0)
RATES = (8, 16, 32, 64, 128, 256, 512, 1024)


def points() -> dict[str, list[Point]]:
    skew = [Point(g, MODEL, n, a, 64.0, 256) for g in ("H100", "H200") for n in TASKS for a in ALPHAS]
    load = [Point("H100", MODEL, 16, 1.0, r, 256, requests=max(2000, 30 * r)) for r in RATES]
    output = [Point("H100", MODEL, 16, 1.0, 64.0, n) for n in (64, 256, 1024)]
    return {"skew": skew, "load": load, "output": output}


def run(out_dir: Path, slo: Slo = SLO, progress: bool = True) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    data: dict = {"slo": msgspec.to_builtins(slo), "model": MODEL}
    for name, pts in points().items():
        rows = []
        for i, p in enumerate(pts):
            rows.append(solve(p, slo))
            if progress:
                print(f"{name} {i + 1}/{len(pts)}", flush=True)
        data[name] = rows
    tpot_point = Point("H100", MODEL, 16, 1.0, 64.0, 256)
    cdf = solve(tpot_point, slo, keep_tpots=True)
    cdf["tpots"] = {label: quantiles(xs) for label, xs in cdf["tpots"].items()}
    data["tpot_cdf"] = {"point": msgspec.to_builtins(tpot_point), **cdf}
    (out_dir / "sweep.json").write_text(json.dumps(data, indent=1))
    plot(data, out_dir)
    return data


def quantiles(values: list[float], n: int = 200) -> list[float]:
    """n evenly spaced order statistics (a CDF's shape without every sample)."""
    xs = sorted(values)
    return [xs[round(i * (len(xs) - 1) / (n - 1))] for i in range(n)] if len(xs) > n else xs


def plot(data: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, gpu in zip(axes, ("H100", "H200")):
        for n in TASKS:
            rows = [r for r in data["skew"] if r["gpu"] == gpu and r["tasks"] == n]
            alphas = [r["alpha"] for r in rows]
            ax.plot(alphas, [r["sun_tpot_5pct_gain_per_gpu"] for r in rows], "o-", label=f"{n} tasks")
        ax.axhline(2.0, color="grey", lw=0.8, ls=":")
        ax.set(title=f"{gpu}, {MODEL}, 64 req/s", xlabel="Zipf alpha")
    axes[0].set_ylabel("SUN / conventional, tok/s per GPU\n(SUN: TPOT p90 within 5%)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "throughput_per_gpu_vs_skew.png", dpi=110)

    fig, ax = plt.subplots(figsize=(6, 4))
    rows = data["load"]
    rates = [r["rate"] for r in rows]
    ax.plot(rates, [r["conventional"]["decode_gpus"] for r in rows], "o--", label="conventional")
    ax.plot(rates, [r["sun_same_slo"]["decode_gpus"] for r in rows], "s-", label="SUN (same SLO)")
    ax.plot(rates, [r["sun_tpot_5pct"]["decode_gpus"] for r in rows], "^-", label="SUN (TPOT within 5%)")
    ax.set(xscale="log", yscale="log", xlabel="requests/s (16 tasks, Zipf 1.0)", ylabel="decode GPUs (H100)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "decode_gpus_vs_load.png", dpi=110)

    fig, ax = plt.subplots(figsize=(6, 4))
    cdf = data["tpot_cdf"]
    for label in ("conventional", "sun_same_slo", "sun_tpot_5pct"):
        xs = sorted(cdf["tpots"][label])
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.plot([x * 1e3 for x in xs], ys, label=f"{label} ({cdf[label]['decode_gpus']} decode GPUs)")
    ax.set(xlabel="TPOT (ms)", ylabel="fraction of requests", title="H100, 16 tasks, Zipf 1.0, 64 req/s")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "tpot_cdf.png", dpi=110)
    plt.close("all")
