"""The package declares what it imports: every third-party module imported under sun_sglang/,
router/ and patches/ belongs to a distribution named in pyproject.toml (dependencies or an
extra), so that `pip install sun-sglang[gpu]` on a fresh GPU machine brings all of it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"sun_sglang", "router", "patches", "sgl_kernel"}  # sgl_kernel: the CPU stand-in we ship
# Installed outside the dependency list, each for a reason pyproject.toml states.
# llmcompressor --no-deps: its transformers pin is older than SGLang's; bfcl_eval --no-deps: its
# requirements are API clients and pins this project does not use
SEPARATE = {"llmcompressor", "bfcl_eval"}


def _imported() -> dict[str, str]:
    """Top-level module -> the first file importing it."""
    found: dict[str, str] = {}
    for folder in ("sun_sglang", "router", "patches"):
        for path in (ROOT / folder).rglob("*.py"):
            if "build" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [
        s for extra in project["optional-dependencies"].values() for s in extra
    ]
    return {_norm(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in specs}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def undeclared(imported: dict[str, str], dists: dict[str, list[str]], declared: set[str]) -> dict[str, str]:
    """Imported third-party modules whose distribution is not declared. A build variant counts
    as its package (mooncake-transfer-engine-non-cuda, nixl-cu12: the CPU wheels used here)."""
    missing = {}
    for module, where in imported.items():
        if module in sys.stdlib_module_names or module in OURS | SEPARATE or module == "__future__":
            continue
        owners = {_norm(d) for d in dists.get(module, [])} or {f"(no distribution: {module})"}
        if not any(o == d or o.startswith(f"{d}-") for o in owners for d in declared):
            missing[module] = f"{sorted(owners)} in {where}"
    return missing


def test_every_imported_distribution_is_declared() -> None:
    missing = undeclared(_imported(), packages_distributions(), _declared())
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_check_finds_an_undeclared_import() -> None:
    dists = {"yaml": ["PyYAML"], "left_pad": ["left-pad"], "nixl_cu": ["nixl-cu12"]}
    imported = {"yaml": "a.py", "left_pad": "b.py", "nixl_cu": "c.py", "json": "d.py"}
    assert undeclared(imported, dists, {"pyyaml", "nixl"}) == {"left_pad": "['left-pad'] in b.py"}
