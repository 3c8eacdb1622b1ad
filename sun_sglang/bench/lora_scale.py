"""Many task models on one prefill server: LoRA prefill modules against full-copy ones.

    python -m sun_sglang.bench lora-scale --adapters 16 --full-copies 4 --out-dir DIR

Clusters in turn, each with one shared decode server holding the plain base, every server pinned
(prefill servers, gateway and load generator on `pins.prefill`, the decode server on
`pins.decode`), the same Zipf-skewed closed-loop workload over the cluster's tasks:
- `lora-N`: one multi-LoRA prefill server holding N adapters;
- `lora-K`: the same server holding K adapters (the first K tasks);
- `full-K`: K full-copy prefill servers, one per task (each a whole SmolLM2 copy).
The adapters have the shape of the trained ones (rank 16, every linear layer) and random weights:
what an adapter costs does not depend on its values. Memory is the RSS of each server's process
tree after its run; whether N full copies fit is judged from the measured RSS of one.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import psutil

from sun_sglang import adapters
from sun_sglang.bench import loadgen, summary
from sun_sglang.bench.soak import tree_rss_mib
from sun_sglang.bench.workload import Lengths, WorkloadConfig
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.config import ClusterConfig, CpuPins, PrefillPoolConfig, RouterSection, TaskConfig
from sun_sglang.launch.plan import plan
from sun_sglang.models import prepare

FULL_COPY = "smollm2-135m-sun-addition"  # each full-copy task serves this checkpoint


def make_adapters(base: Path, n: int, rank: int, folder: Path) -> list[Path]:
    """n random LoRA adapters on the base (kept in `folder` and reused)."""
    out = []
    for i in range(n):
        path = folder / f"adapter-{i:02d}"
        if not (path / "adapter_model.safetensors").is_file():
            adapters.save_random(base, path, rank, adapters.ALL_LINEAR, seed=i, std=0.01)
        out.append(path)
    return out


def lora_cluster(base: Path, adapter_paths: list[Path], rank: int, pins: CpuPins, port: int) -> ClusterConfig:
    tasks = {f"task{i:02d}": TaskConfig(adapter=str(p), pool="lora") for i, p in enumerate(adapter_paths)}
    pool = PrefillPoolConfig(max_lora_rank=rank, max_loras_per_batch=min(8, len(tasks)))
    return ClusterConfig(
        base=str(base),
        tasks=tasks,
        prefill_pools={"lora": pool},
        cpus=pins,
        first_port=port,
        router=RouterSection(port=port - 100),
    )


def full_cluster(base: Path, k: int, pins: CpuPins, port: int) -> ClusterConfig:
    tasks = {f"task{i:02d}": TaskConfig(model_path=str(prepare(FULL_COPY))) for i in range(k)}
    return ClusterConfig(
        base=str(base), tasks=tasks, cpus=pins, first_port=port, router=RouterSection(port=port - 100)
    )


def run_case(name: str, config: ClusterConfig, workload: WorkloadConfig, log_dir: Path) -> dict:
    workload = msgspec.structs.replace(workload, tasks=sorted(config.tasks))
    started = time.monotonic()
    with Cluster(plan(config, "cpu"), log_dir, config.startup_timeout_s) as cluster:
        startup_s = time.monotonic() - started
        records, wall = asyncio.run(loadgen.run(workload, cluster.gateway_url, progress=False))
        rss = {p.name: round(tree_rss_mib(p.pid), 1) for p in cluster.procs}
    prefill_rss = sum(v for k, v in rss.items() if k.startswith("prefill"))
    servers = (
        len(config.tasks)
        if not config.prefill_pools
        else sum(p.replicas for p in config.prefill_pools.values())
    )
    return {
        "case": name,
        "tasks": len(config.tasks),
        "prefill_servers": servers,
        "startup_s": round(startup_s, 1),
        "rss_mib": rss,
        "prefill_rss_mib": round(prefill_rss, 1),
        "prefill_rss_mib_per_task": round(prefill_rss / len(config.tasks), 1),
        "summary": summary.summarize(records, wall, 1, servers + 1),
        "per_task": summary.per_task(records, wall),
    }


def lora_scale(
    n_adapters: int, full_copies: int, rank: int, workload: WorkloadConfig, out_dir: Path, pins: CpuPins
) -> dict:
    base = prepare("smollm2-135m")
    paths = make_adapters(base, n_adapters, rank, out_dir / "adapters")
    cases = [
        (f"lora-{n_adapters}", lora_cluster(base, paths, rank, pins, 36000)),
        (f"lora-{full_copies}", lora_cluster(base, paths[:full_copies], rank, pins, 36200)),
        (f"full-{full_copies}", full_cluster(base, full_copies, pins, 36400)),
    ]
    results = [run_case(name, cfg, workload, out_dir / name) for name, cfg in cases]
    adapter_bytes = (paths[0] / "adapter_model.safetensors").stat().st_size
    one_full = results[2]["prefill_rss_mib_per_task"]
    memory_mib = psutil.virtual_memory().total / 2**20
    lora_n, lora_k = results[0], results[1]
    per_adapter = (lora_n["prefill_rss_mib"] - lora_k["prefill_rss_mib"]) / max(1, n_adapters - full_copies)
    return {
        "workload": msgspec.to_builtins(workload),
        "pins": msgspec.to_builtins(pins),
        "adapter": {
            "rank": rank,
            "targets": list(adapters.ALL_LINEAR),
            "file_mib": round(adapter_bytes / 2**20, 2),
        },
        "cases": results,
        "memory": {
            "machine_mib": round(memory_mib),
            "full_copy_server_mib": one_full,
            "full_copies_that_fit": int(memory_mib // one_full),
            "rss_mib_per_extra_adapter": round(per_adapter, 1),
        },
    }


DEFAULT_WORKLOAD = WorkloadConfig(
    tasks=["placeholder"],
    popularity="zipf",
    zipf_alpha=1.0,
    arrival="closed",
    concurrency=8,
    num_requests=96,
    prompt_words=Lengths(48, 96),
    output_tokens=Lengths(16, 16),
)


def report(result: dict) -> str:
    """A markdown table of the cases, with the memory figures."""
    lines = [
        "| case | tasks | prefill servers | req/s | output tok/s | TTFT p50 / p90 (s) | TPOT p50 (s)"
        " | errors | prefill RSS (MiB) | per task (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result["cases"]:
        s = c["summary"]
        ttft, tpot = s["ttft_s"], s["tpot_s"]
        lines.append(
            f"| {c['case']} | {c['tasks']} | {c['prefill_servers']} | {s['req_s']:.2f}"
            f" | {s['output_tok_s']:.1f} | {ttft['p50']:.2f} / {ttft['p90']:.2f} | {tpot['p50']:.3f}"
            f" | {s['errors']} | {c['prefill_rss_mib']:.0f} | {c['prefill_rss_mib_per_task']:.0f} |"
        )
    m, a = result["memory"], result["adapter"]
    lines += [
        "",
        f"Adapter: rank {a['rank']}, every linear layer, {a['file_mib']} MiB on disk; each adapter"
        f" beyond the first {result['cases'][1]['tasks']} added {m['rss_mib_per_extra_adapter']} MiB"
        f" to the prefill server. A full-copy prefill server: {m['full_copy_server_mib']:.0f} MiB;"
        f" {m['full_copies_that_fit']} would fill this machine's {m['machine_mib']} MiB (before any"
        " decode server).",
    ]
    return "\n".join(lines)
