"""The multi-turn figures for docs/PERFORMANCE.md: per turn, SUN beside conventional, with the
cache-aware prefill policy against least-load, from two `bench compare --turns ...` runs; and
the cached share before and after the prefill-affinity change, from two `bench run` results.

    python -m sun_sglang.bench.multi_turn --cache-aware A/result.json --least-load B/result.json \
        [--before OLD.json --after NEW.json] --out docs/performance
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sun_sglang.bench.summary import turn_table

MODES = ("sun", "conventional")


def extract(results: dict[str, dict], before: dict | None, after: dict | None) -> dict:
    """What the page needs (no per-request records)."""
    first = next(iter(results.values()))
    out: dict = {"workload": first["workload"], "machine": first.get("machine"), "runs": {}}
    for policy, result in results.items():
        out["runs"][policy] = {
            mode: {
                "per_turn": result[mode]["per_turn"],
                "summary": {k: result[mode]["summary"][k] for k in ("requests", "errors", "ttft_s")},
                "prefill_requests": result[mode].get("prefill_requests"),
            }
            for mode in MODES
        }
    if before and after:
        out["before_after"] = {
            "workload": after["config"],
            "before": before["per_turn"],
            "after": after["per_turn"],
        }
    return out


def section(data: dict) -> list[str]:
    w = data["workload"]
    out = [
        "## Multi-turn chat: prefill affinity (issue 20)",
        "",
        f"Cluster `launch/local-multiturn.yaml`: task `chat` on two prefill replicas, `math` on one, "
        f"SmolLM2-135M float32 on 2 CPU cores (prefill servers, gateway and load on CPU 0, decode on "
        f"CPU 1). Workload: {w['num_requests']} conversations of {w['turns']['low']}-{w['turns']['high']} "
        f"turns over {', '.join(w['tasks'])}, {w['arrival']} starts at {w['rate']}/s (at most "
        f"{w['concurrency']} in flight), think time {w['think_time_s']} s (exponential), new messages "
        f"{w['prompt_words']['low']}-{w['prompt_words']['high']} words, {w['output_tokens']['low']} output "
        f"tokens a turn, seed {w['seed']}. Per turn: TTFT, the prefill tokens the servers computed "
        "(prompt - cached, summed), and the share of the previous prompt found in the prefill cache "
        "(mean, and the lowest). Rerun (about 8 minutes each compare):",
        "",
        "```",
        "python -m sun_sglang.bench compare --cluster launch/local-multiturn.yaml --tasks chat,math \\",
        "    --turns 3:4 --think-time-s 1 --rate 0.5 --concurrency 8 --num-requests 12 \\",
        "    --prompt-words 8:24 --output-tokens 24 --seed 0 --prefill-policy cache_aware --out-dir /tmp/ca",
        "python -m sun_sglang.bench compare ... --prefill-policy least_load --out-dir /tmp/ll",
        "python -m sun_sglang.bench.multi_turn --cache-aware /tmp/ca/result.json \\",
        "    --least-load /tmp/ll/result.json --before BEFORE.json --after AFTER.json",
        "python -m sun_sglang.sim report",
        "```",
        "",
        "| policy | mode | turn | requests | TTFT p50 / p90 ms | prompt tok | prefill tok computed "
        "| cached / previous prompt (min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for policy, run in data["runs"].items():
        for mode in MODES:
            for turn, t in run[mode]["per_turn"].items():
                share = t["cached_share_of_previous_prompt"]
                out.append(
                    f"| {policy} | {mode} | {turn} | {t['requests']} | {_ms(t['ttft_s']['p50'])} / "
                    f"{_ms(t['ttft_s']['p90'])} | {t['prompt_tokens_mean']:.0f} | "
                    f"{t['prefill_tokens_computed']} | {_pct(share['mean'])} ({_pct(share['min'])}) |"
                )
    out.append("")
    for policy, run in data["runs"].items():
        for mode in MODES:
            split = run[mode].get("prefill_requests") or {}
            counts = "/".join(str(n) for n in sorted(split.values(), reverse=True))
            out.append(f"Requests per prefill server, {policy}, {mode}: {counts or '-'}.")
    out += ["", "![multi-turn](performance/multi_turn.png)", ""]
    if "before_after" in data:
        ba = data["before_after"]
        w = ba["workload"]
        out += [
            "Before and after the change (gateway at commit d4a4e1a, then this one; same cluster, "
            f"same workload: {w['num_requests']} conversations of {w['turns']['low']} turns all in "
            f"flight on task `{w['tasks'][0]}`, {w['output_tokens']['low']} output tokens a turn):",
            "",
            "| turn | cached / previous prompt, before (min) | after (min) |",
            "|---|---|---|",
        ]
        for turn, t in ba["after"].items():
            old = ba["before"][turn]["cached_share_of_previous_prompt"]
            new = t["cached_share_of_previous_prompt"]
            old_s, new_s = (
                f"{_pct(old['mean'])} ({_pct(old['min'])})",
                f"{_pct(new['mean'])} ({_pct(new['min'])})",
            )
            out.append(f"| {turn} | {old_s} | {new_s} |")
        out.append("")
    return out


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.0f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ttft, ax_tok) = plt.subplots(1, 2, figsize=(10, 4))
    for (policy, run), color in zip(data["runs"].items(), ("tab:blue", "tab:red")):
        for mode, style in zip(MODES, ("-", "--")):
            turns = sorted(run[mode]["per_turn"], key=int)
            t = [run[mode]["per_turn"][k] for k in turns]
            x = [int(k) + 1 for k in turns]
            label = f"{mode}, {policy}"
            ttft, tok = [r["ttft_s"]["p50"] * 1e3 for r in t], [r["prefill_tokens_computed_mean"] for r in t]
            ax_ttft.plot(x, ttft, style, color=color, marker="o", label=label)
            ax_tok.plot(x, tok, style, color=color, marker="o", label=label)
            ax_ttft.set_xticks(x)
            ax_tok.set_xticks(x)
    ax_ttft.set(xlabel="turn", ylabel="TTFT p50 (ms)", title="first-token time by turn")
    ax_tok.set(xlabel="turn", ylabel="prefill tokens computed per request", title="prefill work by turn")
    ax_tok.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m sun_sglang.bench.multi_turn")
    ap.add_argument("--cache-aware", required=True, help="bench compare result.json (cache_aware)")
    ap.add_argument("--least-load", required=True, help="bench compare result.json (least_load)")
    ap.add_argument("--before", help="bench run result (the old gateway)")
    ap.add_argument("--after", help="bench run result (this gateway), same workload")
    ap.add_argument("--out", default="docs/performance")
    args = ap.parse_args()
    load = lambda p: json.loads(Path(p).read_text()) if p else None  # noqa: E731
    runs = {"cache_aware": load(args.cache_aware), "least_load": load(args.least_load)}
    data = extract(runs, load(args.before), load(args.after))
    out = Path(args.out)
    (out / "multi_turn.json").write_text(json.dumps(data, indent=1))
    plot(data, out / "multi_turn.png")
    for policy, run in data["runs"].items():
        for mode in MODES:
            print(policy, mode)
            print(turn_table({int(k): v for k, v in run[mode]["per_turn"].items()}))


if __name__ == "__main__":
    main()
