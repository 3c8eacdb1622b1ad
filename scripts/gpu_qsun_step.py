"""QSUN's decode step on one GPU, plain torch: an 8B-shaped Llama layer stack with 4-bit or 8-bit
weight-only linear layers against the same stack in bf16 (scripts/gpu_decode_step.py's Stack).

For when a GPU machine is lent (Python 3.12, torch 2.11, no network, no SGLang). W4A16 runs
torch's tinygemm kernel (`_weight_int4pack_mm`, group 128, bf16 activations), W8A16 its
`_weight_int8pack_mm` (per-channel scales); each layer type's output is first checked against the
dequantized bf16 matmul (relative error printed). Per (batch, context): bf16 and low-bit step ms,
the measured speed-up, and the roofline's speed-up (sun_sglang.sim.qsun, restated here) for the
same point. One JSON line per point; under 10 minutes on an H100/H200.

    python scripts/gpu_qsun_step.py [--bits 4,8] [--peak-gb-s 4800] [--out qsun.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from gpu_decode_step import HIDDEN, KV_BYTES_PER_TOKEN, LAYERS, PARAMS, VOCAB, Stack, measure

GROUP = 128
OVERHEAD_S = 0.0015  # the roofline's fixed per-step overhead (sun_sglang.sim.costs)


def quantize_int4(w: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """tinygemm layout: asymmetric 4-bit per group of GROUP along k. ((packed, scales_and_zeros),
    the dequantized weight in bf16: what the kernel should multiply by)."""
    n, k = w.shape
    groups = w.float().reshape(n, k // GROUP, GROUP)
    lo, hi = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    scales = (hi - lo).clamp(min=1e-6) / 15
    zeros = lo + scales * 8
    q = ((groups - lo) / scales).round().clamp(0, 15)
    dequantized = ((q - 8) * scales + zeros).reshape(n, k).to(torch.bfloat16)
    q = q.to(torch.int32).reshape(n, k)
    packed = torch.ops.aten._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8), 8)
    sz = torch.cat([scales.reshape(n, -1, 1), zeros.reshape(n, -1, 1)], 2).transpose(0, 1).contiguous()
    return (packed, sz.to(torch.bfloat16)), dequantized


def quantize_int8(w: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Symmetric 8-bit, one scale per output channel; ((weights, scales), dequantized bf16)."""
    scale = w.float().abs().amax(1) / 127
    q = (w.float() / scale[:, None]).round().clamp(-127, 127)
    return (q.to(torch.int8), scale.to(torch.bfloat16)), (q * scale[:, None]).to(torch.bfloat16)


class LowBitStack(Stack):
    """The same stack; its linear layers' weights replaced by `bits`-bit ones (the bf16 copies freed)."""

    def __init__(self, device: str, bits: int) -> None:
        super().__init__(device)
        self.bits = bits
        self.errors: dict[str, float] = {}
        for layer in self.layers:
            for name in ("qkv", "o", "gate_up", "down"):
                w = layer.pop(name)
                layer[name], dequantized = (quantize_int4 if bits == 4 else quantize_int8)(w)
                if name not in self.errors:  # the kernel against the matmul by its dequantized weight
                    x = torch.randn(4, w.shape[1], device=device, dtype=torch.bfloat16)
                    got, want = self.linear(x, layer, name).float(), (x @ dequantized.T).float()
                    self.errors[name] = float((got - want).norm() / want.norm())

    def linear(self, x: torch.Tensor, layer: dict, name: str) -> torch.Tensor:
        q = layer[name]
        if self.bits == 4:
            return torch.ops.aten._weight_int4pack_mm(x, q[0], GROUP, q[1])
        return torch.ops.aten._weight_int8pack_mm(x, q[0], q[1])


def weight_bytes(bits: int | None) -> float:
    linear = PARAMS - 2 * VOCAB * HIDDEN - 2 * LAYERS * HIDDEN
    if bits is None:
        return PARAMS * 2.0
    return linear * (bits / 8 + (4 / GROUP if bits == 4 else 0)) + (PARAMS - linear) * 2.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", default="4,8")
    ap.add_argument("--peak-gb-s", type=float, default=4800.0, help="datasheet bandwidth (H200 4800)")
    ap.add_argument("--batches", default="1,8,32,64,128")
    ap.add_argument("--contexts", default="512,2048,8192")
    ap.add_argument("--kv-budget-gib", type=float, default=60.0)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out")
    args = ap.parse_args()
    t0 = time.time()
    torch.manual_seed(0)
    points = [
        (b, c)
        for c in map(int, args.contexts.split(","))
        for b in map(int, args.batches.split(","))
        if b * c * KV_BYTES_PER_TOKEN <= args.kv_budget_gib * 2**30
    ]
    bf16 = Stack("cuda")
    base_ms = {p: measure(bf16, *p, args.iters)[0] * 1e3 for p in points}
    del bf16
    torch.cuda.empty_cache()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}))
    rows = []
    for bits in map(int, args.bits.split(",")):
        try:
            stack = LowBitStack("cuda", bits)
        except RuntimeError as err:  # the kernel is missing in this torch build
            print(json.dumps({"bits": bits, "error": str(err)[:300]}), flush=True)
            continue
        print(json.dumps({"bits": bits, "kernel_rel_error": stack.errors}), flush=True)
        for batch, context in points:
            seconds, graphed = measure(stack, batch, context, args.iters)
            kv = batch * context * KV_BYTES_PER_TOKEN
            bw = args.peak_gb_s * 1e9
            model = (weight_bytes(None) + kv) / bw + OVERHEAD_S, (weight_bytes(bits) + kv) / bw + OVERHEAD_S
            row = {
                "bits": bits,
                "batch": batch,
                "context": context,
                "bf16_ms": round(base_ms[(batch, context)], 3),
                "low_bit_ms": round(seconds * 1e3, 3),
                "speedup": round(base_ms[(batch, context)] / (seconds * 1e3), 3),
                "roofline_speedup": round(model[0] / model[1], 3),
                "achieved_gb_s": round((weight_bytes(bits) + kv) / seconds / 1e9, 1),
                "cuda_graph": graphed,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        del stack
        torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(json.dumps({"points": len(rows), "wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
