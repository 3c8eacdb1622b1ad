"""Pure-torch stand-ins for the `sgl_kernel` CPU functions that sglang 0.5.23 imports.

PyPI has no CPU build of sgl-kernel. sglang, with SGLANG_USE_CPU_ENGINE=1, imports a few
`*_cpu` functions at module import time; providing them here (and registering no torch ops)
keeps every layer on its torch-native path. Installed only on CPU machines by scripts/setup.sh.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

__version__ = "0.5.23+sun.cpu"


def _rows(ptr: int, n_rows: int, row_bytes: int) -> torch.Tensor:
    # A byte view of the first n_rows rows of a KV buffer given only its address.
    raw = (ctypes.c_uint8 * (n_rows * row_bytes)).from_address(ptr)
    return torch.from_numpy(np.ctypeslib.as_array(raw)).view(n_rows, row_bytes)


def copy_all_layer_kv_cache_cpu(
    data_ptrs: torch.Tensor, strides: torch.Tensor, tgt_loc: torch.Tensor, src_loc: torch.Tensor
) -> None:
    """For every buffer b: copy row src_loc[i] to row tgt_loc[i]; a row is strides[b] bytes."""
    if tgt_loc.numel() == 0:
        return
    tgt = tgt_loc.to(torch.int64).cpu()
    src = src_loc.to(torch.int64).cpu()
    n_rows = int(torch.maximum(tgt.max(), src.max()).item()) + 1
    for ptr, stride in zip(data_ptrs.tolist(), strides.tolist()):
        buf = _rows(int(ptr), n_rows, int(stride))
        buf[tgt] = buf[src]  # gather first, then scatter: safe when the sets overlap


def assign_req_to_token_pool_cpu(
    req_pool_indices: torch.Tensor,
    req_to_token: torch.Tensor,
    start_offset: torch.Tensor,
    end_offset: torch.Tensor,
    out_cache_loc: torch.Tensor,
    pool_len: int | None = None,
) -> None:
    """Fill req_to_token[r, s:e] with the next e - s entries of out_cache_loc, request by request."""
    lengths = (end_offset - start_offset).to(torch.int64)
    total = int(lengths.sum().item())
    if total == 0:
        return
    rows = torch.repeat_interleave(req_pool_indices.to(torch.int64), lengths)
    seg_starts = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(total, dtype=torch.int64) - torch.repeat_interleave(seg_starts, lengths)
    cols = torch.repeat_interleave(start_offset.to(torch.int64), lengths) + within
    req_to_token[rows, cols] = out_cache_loc[:total].to(req_to_token.dtype)


def _unsupported(name: str):
    def fn(*args, **kwargs):
        raise NotImplementedError(
            f"sgl_kernel.{name}: speculative decoding has no CPU kernel in sun-sglang's stand-in"
        )

    fn.__name__ = name
    return fn


build_tree_kernel_efficient_cpu = _unsupported("build_tree_kernel_efficient_cpu")
verify_tree_greedy_cpu = _unsupported("verify_tree_greedy_cpu")
assign_draft_cache_locs_contiguous_cpu = _unsupported("assign_draft_cache_locs_contiguous_cpu")
assign_extend_cache_locs_cpu = _unsupported("assign_extend_cache_locs_cpu")
fill_accept_out_cache_loc_cpu = _unsupported("fill_accept_out_cache_loc_cpu")
fill_bonus_tokens_cpu = _unsupported("fill_bonus_tokens_cpu")
rotate_input_ids_cpu = _unsupported("rotate_input_ids_cpu")
build_draft_decode_metadata_cpu = _unsupported("build_draft_decode_metadata_cpu")
