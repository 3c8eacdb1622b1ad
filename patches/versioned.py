"""Versioned patches: unified diffs for what no plugin hook can reach, applied and verified.

Only import-time failures that happen before SGLang loads any plugin belong here.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from patches.selfcheck import SelfCheckError, sha256_file

PATCH_DIR = Path(__file__).parent / "versioned"


@dataclass(frozen=True)
class VersionedPatch:
    dist: str
    version: str
    patch_file: str
    target: str  # path of the patched file, relative to the distribution's install root
    sha256_before: str
    sha256_after: str
    reason: str


PATCHES = [
    VersionedPatch(
        dist="torchvision",
        version="0.28.0",
        patch_file="torchvision-0.28.0-nms-meta.patch",
        target="torchvision/_meta_registrations.py",
        sha256_before="7c55fdb854bb38899949edfa4e68c7bd69190ea1fed4ae51bf593277661fcbc3",
        sha256_after="5f43a565ea27649ddfc3c86c7d723f93f0b6f81538b97777e67eeecdd34f6f44",
        reason="PyPI's torchvision links CUDA torch, so with CPU torch its ops never load, yet it "
        "registers fake kernels for torchvision::nms/qnms unconditionally (SGLANG_CPU.md item 1)",
    ),
]


def needed() -> bool:
    """The patches fix CPU-only torch builds; a CUDA torch needs none of them."""
    import torch

    return torch.version.cuda is None


def _root(patch: VersionedPatch) -> Path:
    try:
        dist = metadata.distribution(patch.dist)
    except metadata.PackageNotFoundError as err:
        raise SelfCheckError(f"patch target {patch.target}: {patch.dist} is not installed") from err
    if dist.version != patch.version:
        raise SelfCheckError(
            f"patch target {patch.target}: {patch.dist} {dist.version} is installed, "
            f"the patch {patch.patch_file} is for {patch.version}"
        )
    return Path(str(dist.locate_file("")))


def state(patch: VersionedPatch) -> str:
    """'applied' or 'pristine'; anything else is a SelfCheckError naming the target."""
    found = sha256_file(_root(patch) / patch.target)
    if found == patch.sha256_after:
        return "applied"
    if found == patch.sha256_before:
        return "pristine"
    raise SelfCheckError(
        f"patch target {patch.target} ({patch.dist} {patch.version}) matches neither the "
        f"original nor the patched file: sha256 {found[:16]}..."
    )


def apply(patch: VersionedPatch) -> str:
    if state(patch) == "applied":
        return "already applied"
    subprocess.run(
        [
            "patch",
            "-p1",
            "--forward",
            "--silent",
            "--no-backup-if-mismatch",
            "-d",
            str(_root(patch)),
            "-i",
            str(PATCH_DIR / patch.patch_file),
        ],
        check=True,
    )
    if state(patch) != "applied":
        raise SelfCheckError(f"patch target {patch.target}: {patch.patch_file} did not apply")
    return "applied"


def check_all() -> None:
    if not needed():
        return
    for patch in PATCHES:
        if state(patch) != "applied":
            raise SelfCheckError(
                f"patch target {patch.target} is not patched; run scripts/setup.sh "
                f"(or python -m patches apply)"
            )
