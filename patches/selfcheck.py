"""Pin each hook target to the source it was written against, and fail loudly when it moved."""

from __future__ import annotations

import hashlib
import inspect
import pkgutil
from dataclasses import dataclass
from importlib import metadata

from patches import SGLANG_VERSION


class SelfCheckError(RuntimeError):
    """A hook target or a patched file does not match the installed SGLang."""


@dataclass(frozen=True)
class Pin:
    """A dotted SGLang target and the sha256 of its source in the pinned SGLang version."""

    target: str
    source_sha256: str


def source_sha256(obj: object) -> str:
    return hashlib.sha256(inspect.getsource(inspect.unwrap(obj)).encode()).hexdigest()


def resolve(target: str) -> object:
    """The object at a dotted path; attributes of classes resolved without their descriptors."""
    owner_path, _, attr = target.rpartition(".")
    owner = pkgutil.resolve_name(owner_path)
    if isinstance(owner, type) and attr in owner.__dict__:
        raw = owner.__dict__[attr]
        return raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
    return getattr(owner, attr)


def check_pin(pin: Pin) -> None:
    try:
        obj = resolve(pin.target)
    except (ImportError, AttributeError, ValueError) as err:
        raise SelfCheckError(f"hook target {pin.target} does not resolve: {err}") from err
    found = source_sha256(obj)
    if found != pin.source_sha256:
        raise SelfCheckError(
            f"hook target {pin.target} does not match the installed sglang "
            f"{installed_sglang_version()}: source sha256 {found[:16]}..., "
            f"expected {pin.source_sha256[:16]}... (written against sglang {SGLANG_VERSION})"
        )


def check_pins(pins: list[Pin]) -> None:
    version = installed_sglang_version()
    if version != SGLANG_VERSION:
        raise SelfCheckError(f"sglang {version} is installed; sun-sglang pins {SGLANG_VERSION}")
    for pin in pins:
        check_pin(pin)


def installed_sglang_version() -> str:
    try:
        return metadata.version("sglang")
    except metadata.PackageNotFoundError:
        return "not installed"


def sha256_file(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
