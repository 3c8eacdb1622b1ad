"""Decode step time of an 8B-shaped Llama layer stack on one GPU, plain torch (no SGLang).

For when a GPU machine is lent (Python 3.12, torch 2.11, no network): random bf16 weights of
Llama-3.1-8B's shape, contiguous KV caches, one decode step (every layer, the LM head) per batch
size and context length, timed with CUDA events over a captured CUDA graph (eager if capture
fails). Prints one JSON line per point: step ms, bytes read (weights + KV), achieved GB/s and its
share of the datasheet bandwidth, and the roofline prediction of sun_sglang.sim (same formula,
restated here so that this file needs torch only). Under 10 minutes on an H100/H200.

    python scripts/gpu_decode_step.py [--peak-gb-s 4800] [--out results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTER, VOCAB = 32, 4096, 32, 8, 128, 14336, 128256
PARAMS = (
    LAYERS * (HIDDEN * HEAD_DIM * (2 * HEADS + 2 * KV_HEADS) + 3 * HIDDEN * INTER + 2 * HIDDEN)
    + 2 * VOCAB * HIDDEN
)
KV_BYTES_PER_TOKEN = 2 * LAYERS * KV_HEADS * HEAD_DIM * 2


class Stack:
    def __init__(self, device: str) -> None:
        def w(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, device=device, dtype=torch.bfloat16) * 0.02

        self.layers = [
            {
                "qkv": w((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN),
                "o": w(HIDDEN, HEADS * HEAD_DIM),
                "gate_up": w(2 * INTER, HIDDEN),
                "down": w(HIDDEN, INTER),
                "ln1": torch.ones(HIDDEN, device=device, dtype=torch.bfloat16),
                "ln2": torch.ones(HIDDEN, device=device, dtype=torch.bfloat16),
            }
            for _ in range(LAYERS)
        ]
        self.embed = w(VOCAB, HIDDEN)
        self.head = w(VOCAB, HIDDEN)

    def linear(self, x: torch.Tensor, layer: dict, name: str) -> torch.Tensor:
        return x @ layer[name].T

    def step(self, tokens: torch.Tensor, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        b = tokens.shape[0]
        x = self.embed[tokens]  # [b, hidden]
        for layer, (k_cache, v_cache) in zip(self.layers, kv):
            h = F.rms_norm(x, (HIDDEN,), layer["ln1"])
            q, k, v = self.linear(h, layer, "qkv").split(
                [HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], -1
            )
            k_cache[:, :, -1] = k.view(b, KV_HEADS, HEAD_DIM)  # the new token's KV in the last slot
            v_cache[:, :, -1] = v.view(b, KV_HEADS, HEAD_DIM)
            attn = F.scaled_dot_product_attention(
                q.view(b, HEADS, 1, HEAD_DIM), k_cache, v_cache, enable_gqa=True
            )
            x = x + self.linear(attn.reshape(b, HEADS * HEAD_DIM), layer, "o")
            h = F.rms_norm(x, (HIDDEN,), layer["ln2"])
            gate, up = self.linear(h, layer, "gate_up").chunk(2, -1)
            x = x + self.linear(F.silu(gate) * up, layer, "down")
        return (x @ self.head.T).argmax(-1)


def measure(stack: Stack, batch: int, context: int, iters: int) -> tuple[float, bool]:
    kv = [
        (
            torch.randn(batch, KV_HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16),
            torch.randn(batch, KV_HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16),
        )
        for _ in range(LAYERS)
    ]
    tokens = torch.randint(0, VOCAB, (batch,), device="cuda")
    for _ in range(3):
        stack.step(tokens, kv)
    run, graphed = (lambda: stack.step(tokens, kv)), False
    try:
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            stack.step(tokens, kv)
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph):
            stack.step(tokens, kv)
        run, graphed = graph.replay, True
    except RuntimeError:
        pass
    run()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        run()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters / 1e3, graphed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--peak-gb-s", type=float, default=4800.0, help="datasheet bandwidth (H200 4800, H100 3350)"
    )
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--batches", default="1,8,32,64,128,256")
    ap.add_argument("--contexts", default="512,2048,8192")
    ap.add_argument("--kv-budget-gib", type=float, default=70.0)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out")
    args = ap.parse_args()
    t0 = time.time()
    torch.manual_seed(0)
    stack = Stack("cuda")
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "params": PARAMS}))
    rows = []
    for context in map(int, args.contexts.split(",")):
        for batch in map(int, args.batches.split(",")):
            if batch * context * KV_BYTES_PER_TOKEN > args.kv_budget_gib * 2**30:
                continue
            seconds, graphed = measure(stack, batch, context, args.iters)
            bytes_read = PARAMS * 2 + batch * context * KV_BYTES_PER_TOKEN
            flops = (
                2.0 * (PARAMS - VOCAB * HIDDEN) * batch + 4.0 * LAYERS * HEADS * HEAD_DIM * batch * context
            )
            roofline = max(bytes_read / (args.peak_gb_s * 1e9), flops / (args.peak_tflops * 1e12))
            row = {
                "batch": batch,
                "context": context,
                "step_ms": round(seconds * 1e3, 3),
                "cuda_graph": graphed,
                "gb_read": round(bytes_read / 1e9, 2),
                "achieved_gb_s": round(bytes_read / seconds / 1e9, 1),
                "of_peak_bw": round(bytes_read / seconds / 1e9 / args.peak_gb_s, 3),
                "roofline_ms": round(roofline * 1e3, 3),
                "step_over_roofline": round(seconds / roofline, 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(json.dumps({"points": len(rows), "wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
