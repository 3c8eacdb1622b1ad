"""Entry point of the `sglang.srt.plugins` group: runs early in every SGLang process."""

from __future__ import annotations

import logging

logger = logging.getLogger("sun_sglang.patches")


def register() -> None:
    """Self-check, then register the CPU hooks (on CPU only). A mismatch ends the process:
    SGLang only logs plugin exceptions, and a half-hooked server must not serve."""
    from sglang.srt.utils.common import is_cpu

    from patches import cpu_hooks, versioned
    from patches.selfcheck import SelfCheckError, check_pins

    if not is_cpu():
        return
    try:
        check_pins(cpu_hooks.PINS)
        versioned.check_all()
    except SelfCheckError as err:
        logger.critical("sun-sglang self-check failed: %s", err)
        raise SystemExit(f"sun-sglang self-check failed: {err}") from err
    cpu_hooks.register()
    logger.info("sun-sglang: CPU transfer hooks registered")
