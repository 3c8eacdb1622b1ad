"""python -m sun_sglang.models {prepare,path,list} [NAME]"""

from __future__ import annotations

import argparse
import sys

from sun_sglang.models.registry import MODELS, model_path, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sun_sglang.models")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="names of the models this project can build")
    for cmd, text in (("prepare", "build (once) and print the path"), ("path", "print the path")):
        sub.add_parser(cmd, help=text).add_argument("name", choices=sorted(MODELS))
    args = parser.parse_args(argv)
    if args.cmd == "list":
        print("\n".join(sorted(MODELS)))
        return 0
    try:
        print(prepare(args.name) if args.cmd == "prepare" else model_path(args.name))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
