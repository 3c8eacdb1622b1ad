"""The cluster simulator: its cost models, and the event engine against analytic cases."""

from __future__ import annotations

import random

import pytest

from sun_sglang.bench import summary
from sun_sglang.sim.costs import GPUS, MODELS, Profile, Roofline
from sun_sglang.sim.engine import Simulator
from sun_sglang.sim.shape import ClusterShape, SimRequest

H100_8B = Roofline(GPUS["H100"], MODELS["Llama-3.1-8B"])


def test_model_shapes_have_their_published_sizes() -> None:
    assert MODELS["Llama-3.1-8B"].params == pytest.approx(8.03e9, rel=0.005)
    assert MODELS["Qwen3-8B"].params == pytest.approx(8.19e9, rel=0.005)
    assert MODELS["SmolLM2-135M"].params == pytest.approx(134.5e6, rel=0.005)
    assert MODELS["Llama-3.1-8B"].kv_bytes_per_token() == 131072  # 2 x 32 layers x 8 heads x 128 x 2 B


def test_roofline_decode_is_memory_bound_and_prefill_compute_bound() -> None:
    m = MODELS["Llama-3.1-8B"]
    one = H100_8B.decode_step_s(1, 1000)
    assert one == pytest.approx((m.params * 2 + 1000 * 131072) / 3350e9 + 0.0015)
    assert H100_8B.decode_step_s(64, 64_000) > one  # more KV to read
    flops = 2 * m.matmul_params * 4096 + m.attention_flops(4096, 4096) / 2
    assert H100_8B.prefill_s([4096]) == pytest.approx(flops / 989e12 + 0.003)
    half_bits = Roofline(GPUS["H100"], m, weight_bytes=0.5)
    assert half_bits.decode_step_s(1, 0) < 0.3 * H100_8B.decode_step_s(1, 0) + 0.0015


def test_profile_interpolates_and_extrapolates() -> None:
    p = Profile([1, 2, 4], [0.1, 0.12, 0.2], [10, 110], [0.05, 0.15])
    assert p.decode_step_s(3, 0) == pytest.approx(0.16)
    assert p.decode_step_s(8, 0) == pytest.approx(0.36)
    assert p.prefill_s([60, 60]) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        Profile([1], [], [1], [1])


def test_one_request_takes_the_analytic_time() -> None:
    shape = ClusterShape(tasks=["a"], transfer_s=0.002, transfer_s_per_token=1e-6, kv_capacity_tokens=10**6)
    records, wall = Simulator(shape, H100_8B, H100_8B).run([SimRequest(0, "a", 0.5, 700, 10)])
    (rec,) = records
    first = H100_8B.prefill_s([700]) + 0.002 + 700e-6
    steps = [H100_8B.decode_step_s(1, 701 + k) for k in range(9)]
    assert rec.ttft_s == pytest.approx(first)  # streamed when the decode server admits it
    assert rec.latency_s == pytest.approx(first + sum(steps))
    assert wall == pytest.approx(0.5 + rec.latency_s) and rec.sent_s == 0.5


def test_first_token_waits_for_the_decode_step_twice_and_pays_the_fixed_costs() -> None:
    """A decode server busy with a step pre-allocates a new request's KV only when the step ends,
    then the handshake; after prefill it takes the request in at the end of a step again."""
    step, prefill = 0.1, 0.05
    p = Profile([1, 2], [step, step], [10, 1000], [prefill, prefill])
    first = SimRequest(0, "a", 0.0, 10, 40)
    late = SimRequest(1, "a", 0.17, 10, 4)  # arrives while the decode server is mid-step
    plain = ClusterShape(tasks=["a"])
    (_, base), _ = Simulator(plain, p, p).run([first, late])
    # first admitted at 0.05 (steps end 0.15, 0.25, ...); late prefilled 0.17-0.22, taken in at 0.25
    assert base.ttft_s == pytest.approx(0.25 - 0.17)
    timed = ClusterShape(tasks=["a"], handshake_s=0.01, prealloc_between_steps=True, first_token_s=0.02)
    (a, b), _ = Simulator(timed, p, p).run([first, late])
    assert a.ttft_s == pytest.approx(0.01 + prefill + 0.02)  # idle decode: the handshake, no wait
    # first admitted at 0.06 (steps end 0.16, 0.26, 0.36); late pre-allocated at 0.26, handshake to
    # 0.27, prefilled to 0.32, taken in at 0.36, streamed 0.02 later
    assert b.ttft_s == pytest.approx(0.36 + 0.02 - 0.17)
    assert b.latency_s - b.ttft_s == pytest.approx(3 * step)  # the fixed time moves every token alike


def test_sglang_pd_admission_reserves_decode_tokens_per_request_before_prefill() -> None:
    """With prealloc_between_steps, a decode server takes in requests while prompt + reserved KV +
    reserved_decode_tokens per reserved request fit: here 3 of 5 (110 + 300 each; 1,000 tokens);
    the others' prefill waits until one finishes."""
    p = Profile([1, 4], [0.1, 0.1], [10, 1000], [0.05, 0.05])
    shape = ClusterShape(
        tasks=["a"], prealloc_between_steps=True, reserved_decode_tokens=300, kv_capacity_tokens=1000
    )
    sim = Simulator(shape, p, p)
    records, _ = sim.run([SimRequest(i, "a", 0.0, 100, 10) for i in range(5)])
    waited = sorted(h for h, _ in sim.stages.values())
    assert waited[:3] == [0.0, 0.0, 0.0] and min(waited[3:]) > 0.5  # after a first one's 10 tokens
    plain, _ = Simulator(ClusterShape(tasks=["a"], kv_capacity_tokens=1000), p, p).run(
        [SimRequest(i, "a", 0.0, 100, 10) for i in range(5)]
    )
    assert max(r.ttft_s for r in records) > max(r.ttft_s for r in plain) + 0.5  # without it: all five fit


def _requests(n: int, tasks: list[str], rate: float, seed: int = 0) -> list[SimRequest]:
    rng, at, out = random.Random(seed), 0.0, []
    for i in range(n):
        at += rng.expovariate(rate)
        out.append(SimRequest(i, rng.choice(tasks), at, rng.randint(100, 900), rng.randint(2, 300)))
    return out


@pytest.mark.parametrize("mode", ["sun", "conventional"])
def test_every_request_ends_once_and_every_worker_ends_empty(mode: str) -> None:
    shape = ClusterShape(tasks=["a", "b", "c"], mode=mode, decode_workers=2, kv_capacity_tokens=6000)
    sim = Simulator(shape, H100_8B, H100_8B, client_cap=64)
    requests = _requests(3000, shape.tasks, rate=200.0)
    records, _ = sim.run(requests)
    assert [r.index for r in records] == list(range(3000))
    assert all(r.ok and r.ttft_s <= r.latency_s for r in records)  # type: ignore[operator]
    pools = {id(p): p for p in [*sim.decode.values(), *sim.prefill.values()]}.values()
    assert len(pools) == (4 if mode == "sun" else 6)
    for pool in pools:
        for slot in pool.slots:
            assert slot.load == 0 and not slot.worker.running and not slot.worker.queue
            assert slot.worker.reserved == 0 and slot.worker.context == 0
    assert sim.in_flight == 0 and all(not core.work for core in sim.cores.values())


def test_conventional_keeps_tasks_apart_and_sun_mixes_them() -> None:
    requests = _requests(400, ["a", "b"], rate=50.0)
    for mode, expect_mixed in (("sun", True), ("conventional", False)):
        sim = Simulator(ClusterShape(tasks=["a", "b"], mode=mode), H100_8B, H100_8B)
        mixed = []
        original = sim._kick_decode

        def spy(worker, original=original, mixed=mixed):  # noqa: ANN001, ANN202
            original(worker)
            mixed.append(len({j.req.task for j in worker.running}) > 1)

        sim._kick_decode = spy  # type: ignore[method-assign]
        sim.run(requests)
        assert any(mixed) is expect_mixed


def test_closed_loop_holds_its_batch_and_tpot_is_the_step_time() -> None:
    p = Profile([1, 8], [0.1, 0.3], [1, 1000], [0.0, 0.0])
    shape = ClusterShape(tasks=["a"], kv_capacity_tokens=10**6)
    requests = [SimRequest(i, "a", 0.0, 50, 101) for i in range(80)]
    records, wall = Simulator(shape, p, p, closed_concurrency=8).run(requests)
    tpots = sorted(r.tpot_s for r in records)  # type: ignore[type-var]
    # a finished request's successor joins a step late: one step in a hundred runs a smaller batch
    assert tpots[0] == pytest.approx(0.3, rel=0.01) and tpots[-1] == pytest.approx(0.3, rel=0.01)
    assert summary.summarize(records, wall, 1, 2)["req_s"] == pytest.approx(8 / (100 * 0.3), rel=0.02)


def test_workers_on_one_core_share_it() -> None:
    p = Profile([1, 2], [0.1, 0.1], [1, 2], [0.0, 0.0])
    requests = [SimRequest(i, t, 0.0, 10, 11) for i, t in enumerate("ab")]
    alone, _ = Simulator(ClusterShape(tasks=["a", "b"], mode="conventional"), p, p).run(requests)
    shared = ClusterShape(tasks=["a", "b"], mode="conventional", decode_cores=1)
    together, _ = Simulator(shared, p, p).run(requests)
    assert [r.latency_s for r in alone] == pytest.approx([1.0, 1.0])
    assert [r.latency_s for r in together] == pytest.approx([2.0, 2.0])  # each at half speed
    lossy = ClusterShape(tasks=["a", "b"], mode="conventional", decode_cores=1, decode_core_overhead=1.5)
    assert [r.latency_s for r in Simulator(lossy, p, p).run(requests)[0]] == pytest.approx([3.0, 3.0])
    # one request on one task: the other server idles; polling, it still takes its half of the core
    (alone_on_core,) = Simulator(shared, p, p).run(requests[:1])[0]
    assert alone_on_core.latency_s == pytest.approx(1.0)
    spinning = ClusterShape(tasks=["a", "b"], mode="conventional", decode_cores=1, decode_idle_spin=True)
    (spun,) = Simulator(spinning, p, p).run(requests[:1])[0]
    assert spun.latency_s == pytest.approx(2.0)


def test_fewest_finds_the_smallest_count_that_holds() -> None:
    from sun_sglang.sim.sweep import fewest

    calls: list[int] = []

    def holds(n: int) -> bool:
        calls.append(n)
        return n >= 13

    assert fewest(holds) == 13 and len(calls) < 10
    assert fewest(lambda n: True, start=3) == 3
    with pytest.raises(RuntimeError):
        fewest(lambda n: False, limit=8)


def test_light_load_over_many_tasks_needs_one_shared_decode_gpu() -> None:
    from sun_sglang.sim.sweep import Point, solve

    row = solve(Point("H100", "Llama-3.1-8B", tasks=8, alpha=1.0, rate=8.0, output_tokens=128, requests=600))
    conv, sun = row["conventional"], row["sun_same_slo"]
    assert conv["decode_gpus"] == 8 and sun["decode_gpus"] == 1  # conventional: at least one per task
    assert row["prefill_gpus"] == 8 and conv["gpus"] == 16 and sun["gpus"] == 9
    assert row["sun_same_slo_gain_per_gpu"] == pytest.approx(16 / 9, rel=0.02)  # same load served
    assert sun["tpot_p90_s"] <= 0.020 and row["sun_tpot_5pct"]["tpot_p90_s"] <= 1.05 * conv["tpot_p90_s"]


def test_qsun_speedup_follows_the_bytes_read() -> None:
    from sun_sglang.sim import qsun
    from sun_sglang.sim.costs import GPUS, MODELS, Roofline

    m = MODELS["Llama-3.1-8B"]
    lin = qsun.linear_params(m)
    assert qsun.weight_bytes_per_param(m, None) == 2.0
    assert qsun.weight_bytes_per_param(m, 4, 128) == pytest.approx(
        (lin * (0.5 + 2 / 128) + (m.params - lin) * 2) / m.params
    )
    rows = qsun.speedups("H100", "Llama-3.1-8B", 4)
    one = next(r for r in rows if r["batch"] == 1 and r["context"] == 512)
    g = GPUS["H100"]
    bytes_bf16 = m.params * 2 + 512 * m.kv_bytes_per_token()
    bytes_w4 = m.params * qsun.weight_bytes_per_param(m, 4) + 512 * m.kv_bytes_per_token()
    overhead = Roofline(g, m).decode_overhead_s
    want = (bytes_bf16 / (g.mem_bw_gb_s * 1e9) + overhead) / (bytes_w4 / (g.mem_bw_gb_s * 1e9) + overhead)
    assert one["speedup"] == pytest.approx(want) and one["bound"] == "memory"
    for context in qsun.CONTEXTS:  # falls with the batch (weights amortized, then compute-bound)
        line = [r["speedup"] for r in rows if r["context"] == context]
        assert line == sorted(line, reverse=True) and all(s >= 1.0 for s in line)
    low = Roofline(g, m, weight_bytes=qsun.weight_bytes_per_param(m, 4))
    assert qsun._compute_bound(low, 4096, 4096 * 16) and not qsun._compute_bound(low, 512, 512 * 512)
    w8 = {(r["batch"], r["context"]): r["speedup"] for r in qsun.speedups("H100", "Llama-3.1-8B", 8)}
    assert all(r["speedup"] > w8[(r["batch"], r["context"])] for r in rows)  # 4 bits beat 8
