"""QSUN's decode speed-up from the roofline: a decode step with low-bit linear weights (W4A16 or
W8A16, one bf16 scale per group) against bf16 weights, by batch size and context length.

Only the linear layers are quantized (the embeddings and the LM head stay bf16, as in the QSUN
checkpoints); the KV cache stays bf16. A low-bit step reads fewer weight bytes and does the same
bf16 FLOPs (the kernels dequantize on the fly), so the speed-up is largest at small batches and
short contexts (weight-bound), shrinks as the batch's KV bytes grow (more requests, longer
contexts: for an 8B model the KV of 512 requests x 512 tokens is 34 GB, 6x the 4-bit weights), and
vanishes where the step turns compute-bound (thousands of short requests). The dequantization
work is taken as free: these are upper bounds.
"""

from __future__ import annotations

from sun_sglang.sim.costs import GPUS, MODELS, ModelShape, Roofline

BATCHES = (1, 8, 32, 64, 128, 256, 512)
CONTEXTS = (512, 2048, 8192)
TARGET = 1.45  # the paper's "about 45% faster decode"


def linear_params(m: ModelShape) -> int:
    return m.layers * (m.hidden * m.head_dim * (2 * m.heads + 2 * m.kv_heads) + 3 * m.hidden * m.intermediate)


def weight_bytes_per_param(m: ModelShape, bits: int | None, group_size: int = 128) -> float:
    """Average bytes per parameter: bf16 everywhere, or `bits` plus a bf16 scale per group for the
    linear layers."""
    if bits is None:
        return 2.0
    lin = linear_params(m)
    quantized = lin * (bits / 8 + 2 / group_size)
    return (quantized + (m.params - lin) * 2.0) / m.params


def speedups(gpu: str, model: str, bits: int, group_size: int = 128) -> list[dict]:
    """bf16 step time / low-bit step time at every (batch, context) of the grid."""
    m, g = MODELS[model], GPUS[gpu]
    bf16 = Roofline(g, m)
    low = Roofline(g, m, weight_bytes=weight_bytes_per_param(m, bits, group_size))
    rows = []
    for context in CONTEXTS:
        for batch in BATCHES:
            tokens = batch * context
            a, b = bf16.decode_step_s(batch, tokens), low.decode_step_s(batch, tokens)
            rows.append(
                {
                    "gpu": gpu,
                    "model": model,
                    "bits": bits,
                    "batch": batch,
                    "context": context,
                    "bf16_ms": a * 1e3,
                    "low_bit_ms": b * 1e3,
                    "speedup": a / b,
                    "bound": "compute" if _compute_bound(low, batch, tokens) else "memory",
                }
            )
    return rows


def _compute_bound(cost: Roofline, batch: int, tokens: int) -> bool:
    m = cost.model
    bytes_read = m.params * cost.weight_bytes + tokens * m.kv_bytes_per_token(cost.kv_bytes)
    flops = 2.0 * m.matmul_params * batch + m.attention_flops(1, tokens)
    return flops / (cost.gpu.bf16_tflops * 1e12) > bytes_read / (cost.gpu.mem_bw_gb_s * 1e9)


def table(rows: list[dict]) -> str:
    """A markdown table: one line per (GPU, bits, context), the speed-up by batch size."""
    head = "| GPU | weights | context | " + " | ".join(f"batch {b}" for b in BATCHES) + " |"
    lines = [head, "|" + "---|" * (3 + len(BATCHES))]
    keys = sorted({(r["gpu"], r["bits"], r["context"]) for r in rows})
    for gpu, bits, context in keys:
        cells = [r for r in rows if (r["gpu"], r["bits"], r["context"]) == (gpu, bits, context)]
        cells.sort(key=lambda r: r["batch"])
        marks = " | ".join(f"{r['speedup']:.2f}x" + ("*" if r["speedup"] >= TARGET else "") for r in cells)
        lines.append(f"| {gpu} | W{bits}A16 | {context} | {marks} |")
    return "\n".join(lines)
