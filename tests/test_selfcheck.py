"""The start-up self-check: hook targets and patched files pinned to the installed versions."""

import subprocess
import sys

import pytest

from patches import cpu_hooks, plugin, versioned
from patches.selfcheck import Pin, SelfCheckError, check_pin, check_pins


def test_installed_sglang_matches_every_pin() -> None:
    check_pins(cpu_hooks.PINS)


def test_moved_hook_target_is_named() -> None:
    pin = Pin(cpu_hooks.SEND_KV_CHUNK, "0" * 64)
    with pytest.raises(SelfCheckError, match=r"_send_kv_chunk does not match the installed sglang"):
        check_pin(pin)


def test_missing_hook_target_is_named() -> None:
    target = "sglang.srt.disaggregation.prefill.SchedulerDisaggregationPrefillMixin.no_such_fn"
    with pytest.raises(SelfCheckError, match="no_such_fn does not resolve"):
        check_pin(Pin(target, "0" * 64))


def test_plugin_refuses_to_run_half_hooked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside an SGLang process the plugin ends the process, naming the target."""
    bad = Pin(cpu_hooks.NIXL_MANAGER_INIT, "f" * 64)
    monkeypatch.setattr(cpu_hooks, "PINS", [*cpu_hooks.PINS, bad])
    with pytest.raises(SystemExit, match=r"NixlKVManager.__init__ does not match"):
        plugin.register()


def test_versioned_patch_for_another_version_is_refused() -> None:
    other = versioned.VersionedPatch(
        dist="torchvision",
        version="0.0.1",
        patch_file="x.patch",
        target="torchvision/_meta_registrations.py",
        sha256_before="",
        sha256_after="",
        reason="",
    )
    with pytest.raises(SelfCheckError, match=r"_meta_registrations.py: torchvision .* is for 0.0.1"):
        versioned.state(other)


@pytest.mark.skipif(not versioned.needed(), reason="CUDA torch needs no versioned patch")
def test_versioned_patches_are_applied() -> None:
    assert all(versioned.state(p) == "applied" for p in versioned.PATCHES)
    import torchvision  # the import that failed before the patch

    assert torchvision.__version__.startswith("0.28")


def test_cli_check_passes() -> None:
    out = subprocess.run([sys.executable, "-m", "patches", "check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "self-check: ok" in out.stdout
