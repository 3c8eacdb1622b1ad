"""Routing policies and the prefix index, without servers."""

import random
from collections import Counter

import pytest

from router.policy import CacheAwareConfig, cache_aware, least_load, power_of_two, rendezvous, round_robin
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
    assert cache_aware(matched=[0, 96, 32], loads=[0, 3, 1]) == 1


def test_cache_aware_keeps_a_young_conversation_whose_cacheable_part_is_a_small_share() -> None:
    """Turn 2 of a chat in PD: 36 of 120 prompt tokens are cacheable (the previous prompt; the
    decode server wrote the answer), 24 of them the system prefix every worker holds. The old
    rule (half the prompt cached, else least-loaded) sent it to the idle worker."""
    assert cache_aware(matched=[32, 16], loads=[160, 40]) == 0


def test_cache_aware_balances_when_nothing_but_the_shared_prefix_matches() -> None:
    assert cache_aware(matched=[16, 16, 16], loads=[5, 3, 1]) == 2
    assert cache_aware(matched=[0, 0], loads=[0, 0]) == 0
    assert cache_aware(matched=[0, 0], loads=[0, 0], sizes=[40, 7]) == 1  # the emptier cache


def test_cache_aware_gives_way_only_when_the_holder_is_overloaded() -> None:
    cfg = CacheAwareConfig(min_match_tokens=16, balance_abs=1000, balance_rel=1.5)
    assert cache_aware([0, 96, 0], [0, 900, 0], cfg) == 1  # within balance_abs
    assert cache_aware([0, 96, 0], [2, 1200, 1], cfg) == 2  # overloaded: the least loaded
    assert cache_aware([0, 96, 0], [5000, 6000, 5000], cfg) == 1  # 1.2x: not overloaded
    # one worker's imbalance does not move a conversation that lives on a balanced one
    assert cache_aware([96, 0, 0], [100, 5000, 0], cfg) == 0


def test_session_key_places_a_conversation_before_any_prefix_is_known() -> None:
    workers = ["http://a:1", "http://b:1", "http://c:1"]
    spread = Counter(rendezvous(f"user-{k}", workers) for k in range(300))
    assert set(spread) == {0, 1, 2} and min(spread.values()) > 60
    home = rendezvous("user-7", workers)
    assert cache_aware([16, 16, 16], [0, 0, 0], sticky=home) == home  # nothing cached beyond the template
    assert cache_aware([16, 96, 16], [0, 0, 0], sticky=0) == 1  # a longer prefix elsewhere wins
    # a worker leaving moves only its own keys
    others = [w for i, w in enumerate(workers) if i != home]
    moved = [k for k in range(300) if rendezvous(f"user-{k}", workers) != home]
    assert all(workers[rendezvous(f"user-{k}", workers)] in others for k in moved)
    healthy = [i != home for i in range(3)]
    assert rendezvous("user-7", workers, healthy) != home
    assert all(rendezvous(f"user-{k}", workers, healthy) == rendezvous(f"user-{k}", workers) for k in moved)


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
    index = PrefixIndex(block=2, capacity_tokens=4)
    index.record("a", index.keys([1, 2, 3, 4]))
    index.record("a", index.keys([7, 8]))
    assert index.matched_tokens(index.keys([1, 2, 3, 4]), ["a"]) == [0]  # its first block was evicted
    assert index.matched_tokens(index.keys([7, 8]), ["a"]) == [2]


def test_prefill_pool_keeps_a_conversation_on_its_worker() -> None:
    from router.pools import PrefillPool

    pool = PrefillPool(["a", "b", "c"])
    convo = list(range(40))
    first = pool.choose(convo).slot
    pool.place(first, len(convo))
    other = pool.choose(list(range(100, 140))).slot  # a different conversation goes elsewhere
    assert other is not first
    pool.release(first, len(convo))
    assert pool.choose(convo + list(range(500, 520))).slot is first  # next turn: same worker


def test_six_interleaved_chats_stay_on_their_replica() -> None:
    """Two replicas, six conversations in flight, each turn's prompt = the previous prompt + an
    answer + a new question (a 24-token system prefix shared by all). Every later turn goes to
    the replica holding its previous prompt, and the conversations split between the replicas."""
    from router.pools import PrefillPool

    pool = PrefillPool(["p0", "p1"])
    system = list(range(24))
    prompts = {c: system + [1000 + 100 * c + k for k in range(12)] for c in range(6)}
    homes: dict[int, object] = {}
    for turn in range(4):
        held = []
        for c in range(6):  # interleaved: every conversation's turn is in flight together
            choice = pool.choose(prompts[c])
            pool.place(choice.slot, len(prompts[c]))
            held.append((choice.slot, len(prompts[c])))
            if turn:
                assert choice.slot is homes[c] and choice.predicted >= len(prompts[c]) - 60 - 16
            homes[c] = choice.slot
        for slot, tokens in held:
            pool.release(slot, tokens)
        for c in range(6):  # a 48-token answer (never cached at prefill) and the next question
            prompts[c] = prompts[c] + [5000 + k for k in range(48)] + [9000 + c, 9100 + turn]
    split = Counter(homes[c].url for c in range(6))
    assert split["p0"] >= 2 and split["p1"] >= 2, split  # a shared system prompt draws no pile-up


def test_prefix_index_respects_each_workers_cache_size_and_a_restart() -> None:
    from router.config import PrefillWorker
    from router.pools import PrefillPool

    small = PrefillWorker(url="http://s:1", bootstrap_port=1, cache_tokens=64)
    pool = PrefillPool([small])
    for c in range(10):
        pool.choose([c] * 32)
    assert pool.prefixes.size() == 64 // 16  # four blocks: what a 64-token cache can hold
    convo = list(range(200, 264))
    pool.choose(convo)
    again = pool.choose(convo)
    assert again.predicted == 64
    pool.observe(again, cached_tokens=0)  # the server held nothing: it restarted or was flushed
    assert pool.prefixes.matched_tokens(pool.prefixes.keys(convo), [small.url]) == [64]
    assert pool.prefixes.size() == 4  # only the prompt it just ran
    pool.observe(pool.choose(convo), cached_tokens=48)  # a partial hit is no restart
    assert pool.prefixes.size() == 4


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
