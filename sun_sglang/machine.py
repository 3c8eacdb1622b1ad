"""What a measurement ran on: the CPU's model name and core count (speeds differ by machine:
AMX makes bf16 fast on some, AVX2 alone on others)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores"
