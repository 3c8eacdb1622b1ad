"""A multi-turn chat with one task model through the gateway, showing prefix-cache hits.

Each turn resends the whole conversation; the gateway routes it to the prefill server that holds
the conversation's prefix, so that server computes only the new tokens.

    .venv/bin/python examples/multi_turn_chat.py --url http://127.0.0.1:8000 --model math
    .venv/bin/python examples/multi_turn_chat.py ... --interactive
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from openai import OpenAI

SCRIPTED = ["Tell me about the moon.", "And the sun?", "Which of the two is bigger?"]


@dataclass
class Conversation:
    client: OpenAI
    model: str
    max_tokens: int = 48
    messages: list[dict[str, str]] = field(default_factory=list)

    def ask(self, user: str) -> tuple[str, int, int]:
        """One turn: (answer, prompt tokens, prompt tokens served from the prefix cache)."""
        self.messages.append({"role": "user", "content": user})
        reply = self.client.chat.completions.create(
            model=self.model, messages=self.messages, max_tokens=self.max_tokens, temperature=0
        )
        answer = reply.choices[0].message.content or ""
        self.messages.append({"role": "assistant", "content": answer})
        details = reply.usage.prompt_tokens_details
        return answer, reply.usage.prompt_tokens, details.cached_tokens if details else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="math")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--interactive", action="store_true")
    args = parser.parse_args()
    convo = Conversation(OpenAI(base_url=f"{args.url}/v1", api_key="unused"), args.model, args.max_tokens)
    turns = iter(lambda: input("you> "), "") if args.interactive else iter(SCRIPTED)
    for user in turns:
        answer, prompt, cached = convo.ask(user)
        print(f"> {user}\n{answer}\n  [prompt {prompt} tokens, {cached} from the prefill's cache]")


if __name__ == "__main__":
    main()
