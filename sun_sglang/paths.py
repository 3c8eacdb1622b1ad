"""Where the project keeps what it builds: models, cluster logs. Read once, at the edge."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache root: $SUN_SGLANG_HOME, else ~/.cache/sun-sglang."""
    root = os.environ.get("SUN_SGLANG_HOME") or Path.home() / ".cache" / "sun-sglang"
    return Path(root)


def models_dir() -> Path:
    return home() / "models"
