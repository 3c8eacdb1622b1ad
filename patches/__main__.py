"""python -m patches {apply,check}: install-time application and verification."""

from __future__ import annotations

import argparse
import os
import sys

from patches import cpu_hooks, versioned
from patches.selfcheck import SelfCheckError, check_pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patches")
    parser.add_argument("cmd", choices=["apply", "check"])
    args = parser.parse_args(argv)
    try:
        if args.cmd == "apply":
            if versioned.needed():
                for patch in versioned.PATCHES:
                    print(f"{patch.patch_file}: {versioned.apply(patch)}")
            return 0
        versioned.check_all()
        if versioned.needed():
            os.environ.setdefault("SGLANG_USE_CPU_ENGINE", "1")  # the pinned modules' CPU imports
            check_pins(cpu_hooks.PINS)
        print("sun-sglang self-check: ok")
        return 0
    except SelfCheckError as err:
        print(f"sun-sglang self-check failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
