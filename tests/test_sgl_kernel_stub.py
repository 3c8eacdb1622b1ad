"""The pure-torch sgl_kernel stand-ins against plain loops (patches/sgl_kernel_cpu)."""

import pytest
import torch

sgl_kernel = pytest.importorskip("sgl_kernel")
if not getattr(sgl_kernel, "__version__", "").endswith("+sun.cpu"):
    pytest.skip("the real sgl_kernel is installed (GPU machine)", allow_module_level=True)


def test_assign_req_to_token_pool_matches_loop() -> None:
    req_to_token = torch.zeros((4, 16), dtype=torch.int32)
    expected = req_to_token.clone()
    rows = torch.tensor([2, 0, 3])
    start, end = torch.tensor([3, 0, 5]), torch.tensor([6, 2, 5])
    out_cache_loc = torch.arange(100, 105, dtype=torch.int64)
    cursor = 0
    for r, s, e in zip(rows.tolist(), start.tolist(), end.tolist()):
        expected[r, s:e] = out_cache_loc[cursor : cursor + e - s].to(torch.int32)
        cursor += e - s
    sgl_kernel.assign_req_to_token_pool_cpu(rows, req_to_token, start, end, out_cache_loc, 16)
    assert torch.equal(req_to_token, expected)


def test_copy_all_layer_kv_cache_copies_rows_in_every_buffer() -> None:
    buffers = [torch.arange(8 * 6, dtype=torch.float32).view(8, 6) + 1000 * b for b in range(3)]
    expected = [b.clone() for b in buffers]
    tgt, src = torch.tensor([5, 1, 7]), torch.tensor([0, 2, 1])
    for e in expected:
        e[tgt] = e[src].clone()
    ptrs = torch.tensor([b.data_ptr() for b in buffers], dtype=torch.int64)
    strides = torch.tensor([b.stride(0) * b.element_size() for b in buffers], dtype=torch.int64)
    sgl_kernel.copy_all_layer_kv_cache_cpu(ptrs, strides, tgt, src)
    for got, want in zip(buffers, expected):
        assert torch.equal(got, want)


def test_speculative_symbols_fail_clearly() -> None:
    with pytest.raises(NotImplementedError, match="verify_tree_greedy_cpu"):
        sgl_kernel.verify_tree_greedy_cpu()
