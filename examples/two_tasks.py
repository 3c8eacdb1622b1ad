"""Start a local SUN cluster (two task models, one shared decode server), ask each task one chat
question through the OpenAI client, print the answers, stop the cluster.

    .venv/bin/python examples/two_tasks.py [--config launch/local-smollm2.yaml]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from openai import OpenAI

from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.plan import plan
from sun_sglang.launch.roles import detect_device
from sun_sglang.paths import home

QUESTIONS = {"math": "What is 47 plus 41?"}  # the math task's module was trained on such sums
DEFAULT_QUESTION = "Write a haiku about the sea."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=str(Path(__file__).parents[1] / "launch/local-smollm2.yaml"))
    args = parser.parse_args()
    config = cluster_config.load(args.config)
    device = detect_device() if config.device == "auto" else config.device
    logs = home() / "logs" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"starting {config.server_count} SGLang servers and the gateway on {device} (logs: {logs})")
    with Cluster(plan(config, device), logs, config.startup_timeout_s) as cluster:
        print(f"cluster up in {cluster.startup_s['cluster']:.0f} s; gateway {cluster.gateway_url}")
        client = OpenAI(base_url=f"{cluster.gateway_url}/v1", api_key="unused")
        print("models:", [m.id for m in client.models.list().data])
        for task in config.tasks:
            t0 = time.perf_counter()
            reply = client.chat.completions.create(
                model=task,
                messages=[{"role": "user", "content": QUESTIONS.get(task, DEFAULT_QUESTION)}],
                max_tokens=32,
                temperature=0,
            )
            took = time.perf_counter() - t0
            print(
                f"[{task}] ({took:.1f} s, {reply.usage.completion_tokens} tokens) "
                f"{reply.choices[0].message.content!r}"
            )


if __name__ == "__main__":
    main()
