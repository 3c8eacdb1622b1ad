"""Multi-turn chat on real servers: one task with two prefill replicas, six conversations of three
turns in flight together. Every later turn must find its previous prompt in the prefill server's
radix cache (SGLang's own count, reported as cached tokens), with the conversations spread over
both replicas; and when the cluster is stopped right after, the access log has every request."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from sun_sglang.bench import loadgen, summary
from sun_sglang.bench.workload import Lengths, WorkloadConfig
from tests.cluster_util import start_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
CONVERSATIONS, TURNS = 6, 3


def test_interleaved_conversations_keep_their_prefill_replica(tmp_path) -> None:  # noqa: ANN001
    cluster = start_cluster(tmp_path, "mooncake_tcp", replicas={"chat": 2})
    try:
        cfg = WorkloadConfig(
            tasks=["chat"],
            arrival="closed",
            concurrency=CONVERSATIONS,
            num_requests=CONVERSATIONS,
            turns=Lengths(TURNS, TURNS),
            prompt_words=Lengths(6, 12),
            output_tokens=Lengths(24, 24),
            seed=3,
        )
        records, _ = asyncio.run(loadgen.run(cfg, cluster.gateway_url, progress=False))
    finally:
        cluster.stop()  # at once, right after the last answer
    assert len(records) == CONVERSATIONS * TURNS and all(r.ok for r in records), [r.error for r in records]
    prompts = {(r.conversation, r.turn): r for r in records}
    shares = [
        prompts[(c, t)].cached_tokens / prompts[(c, t - 1)].prompt_tokens
        for c in range(CONVERSATIONS)
        for t in range(1, TURNS)
    ]
    turns = summary.per_turn(records)
    print(summary.turn_table(turns))
    # the cacheable part of turn 2 is under half its prompt: the old share rule lost these
    assert min(prompts[(c, 0)].prompt_tokens / prompts[(c, 1)].prompt_tokens for c in range(6)) < 0.6
    assert min(shares) >= 0.9, shares
    lines = [
        json.loads(line)
        for line in (tmp_path / "logs" / "gateway.log").read_text().splitlines()
        if line.startswith("{")
    ]
    chats = [line for line in lines if line["path"] == "/v1/chat/completions"]
    assert len(chats) == len(records) and {line["status"] for line in chats} == {200}
    first_turns = [line["prefill"] for line in chats]
    per_replica = Counter(first_turns)
    assert len(per_replica) == 2 and min(per_replica.values()) >= 2 * TURNS, per_replica
