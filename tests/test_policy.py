"""Routing policies and the prefix index, without servers."""

import random
from collections import Counter

import pytest

from router.policy import CacheAwareConfig, cache_aware, least_load, power_of_two, round_robin
from router.prefix_index import PrefixIndex


def test_least_load_picks_smallest_lowest_index_on_ties() -> None:
    assert least_load([3, 1, 1, 2]) == 1
    assert least_load([0, 0]) == 0


def test_unhealthy_workers_are_skipped_and_none_left_is_an_error() -> None:
    assert least_load([0, 5, 2], healthy=[False, True, True]) == 2
    assert round_robin(0, 3, healthy=[False, True, True]) == 1
    assert power_of_two([0, 9], random.Random(0), healthy=[False, True]) == 1
    with pytest.raises(LookupError):
        least_load([0, 1], healthy=[False, False])


def test_round_robin_cycles() -> None:
    assert [round_robin(t, 3) for t in range(6)] == [0, 1, 2, 0, 1, 2]


def test_power_of_two_never_picks_the_most_loaded_of_three() -> None:
    rng = random.Random(1)
    picks = Counter(power_of_two([5, 1, 9], rng) for _ in range(2000))
    assert picks[2] == 0 and picks[1] > picks[0] > 0


def test_cache_aware_follows_the_prefix_when_balanced() -> None:
    assert cache_aware(matched=[0, 96, 32], prompt_len=100, loads=[0, 3, 1]) == 1


def test_cache_aware_falls_back_to_least_load() -> None:
    cfg = CacheAwareConfig(min_match_ratio=0.5, balance_abs=32, balance_rel=1.5)
    # too little of the prompt cached anywhere
    assert cache_aware([0, 16, 0], 100, [5, 3, 1], cfg) == 2
    # imbalanced: the cache holder is overloaded
    assert cache_aware([0, 96, 0], 100, [2, 200, 1], cfg) == 2


def test_prefix_index_matches_whole_blocks_of_a_shared_prefix() -> None:
    index = PrefixIndex(block=4)
    turn1 = list(range(10))
    index.record("b", index.keys(turn1))
    turn2 = turn1 + [42, 43, 44, 45, 46]
    assert index.matched_tokens(index.keys(turn2), ["a", "b"]) == [0, 8]
    assert index.matched_tokens(index.keys([99] + turn1), ["a", "b"]) == [0, 0]  # a prefix, not a substring
    index.forget("b")
    assert index.matched_tokens(index.keys(turn2), ["a", "b"]) == [0, 0]


def test_prefix_index_evicts_least_recent() -> None:
    index = PrefixIndex(block=2, capacity=2)
    index.record("a", index.keys([1, 2, 3, 4]))
    index.record("a", index.keys([7, 8]))
    assert index.matched_tokens(index.keys([1, 2, 3, 4]), ["a"]) == [0]  # its first block was evicted
    assert index.matched_tokens(index.keys([7, 8]), ["a"]) == [2]


def test_prefill_pool_keeps_a_conversation_on_its_worker() -> None:
    from router.pools import PrefillPool

    pool = PrefillPool(["a", "b", "c"])
    convo = list(range(40))
    first = pool.choose(convo)
    pool.place(first, len(convo))
    other = pool.choose(list(range(100, 140)))  # a different conversation goes elsewhere
    assert other is not first
    pool.release(first, len(convo))
    assert pool.choose(convo + list(range(500, 520))) is first  # next turn: same worker


def test_decode_pool_least_load_spreads_token_weight() -> None:
    from router.pools import DecodePool

    pool = DecodePool(["d0", "d1"])
    picks = []
    for weight in (100, 10, 10, 10):
        slot = pool.choose()
        pool.place(slot, weight)
        picks.append(slot.worker)
    assert picks == ["d0", "d1", "d1", "d1"] and [s.load for s in pool.slots] == [100, 30]


def test_pool_membership_changes_keep_slots_of_requests_in_flight() -> None:
    from router.pools import DecodePool

    pool = DecodePool(["d0", "d1"])
    held = pool.choose()
    pool.place(held, 50)
    pool.remove(pool.find("d1"))
    pool.add("d2")
    pool.release(held, 50)  # the slot it holds is still the right one
    assert [(s.worker, s.load) for s in pool.slots] == [("d0", 0), ("d2", 0)]
    pool.find("d0").draining = True
    assert pool.choose().worker == "d2"
    with pytest.raises(ValueError, match="already in the pool"):
        pool.add("d2")
