"""The command line and environment of one SGLang server in a SUN role.

Every server gets the same pinned dtype and KV-dtype spelling, loopback addresses and the transfer
backend; CPU machines get the work-arounds of shared/SGLANG_CPU.md (flags and environment here,
code fixes in patches/). Pure functions: nothing here starts a process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Literal

import msgspec

from sun_sglang.launch.hosts import PortRange, is_loopback

Role = Literal["prefill", "decode", "null"]  # null: not disaggregated (SGLang's name)
Backend = Literal["mooncake_tcp", "mooncake", "nixl"]
Device = Literal["cpu", "cuda"]

GRAMMAR_BACKEND = "xgrammar"  # every server of a cluster: the same grammar on both PD legs
CPU_FLAGS = [
    "--attention-backend",
    "torch_native",
    "--cuda-graph-backend-decode",
    "disabled",
    "--cuda-graph-backend-prefill",
    "disabled",
    "--skip-server-warmup",
    # Idle schedulers otherwise spin a core each: three servers on two cores ran 10x slower.
    "--sleep-on-idle",
]


def pinned(cpus: str | None) -> list[str]:
    """The argv prefix that runs a command on these CPUs only (nothing when None)."""
    return ["taskset", "-c", cpus] if cpus else []


def device_for(setting: str) -> Device:
    """A cluster file's `device` (auto, cpu, cuda) as the device to serve on."""
    return detect_device() if setting == "auto" else setting  # type: ignore[return-value]


def kv_tokens(given: int | None, device: str) -> int | None:
    """--max-total-tokens: as given, or 4096 on CPU (SGLang would size it from all memory)."""
    return given or (4096 if device == "cpu" else None)


def detect_device() -> Device:
    """cuda when an NVIDIA GPU answers, else cpu. Called once, at the command-line edge."""
    if shutil.which("nvidia-smi") is None:
        return "cpu"
    probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20)
    return "cuda" if probe.returncode == 0 and probe.stdout.strip() else "cpu"


class ServeOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What every server of a cluster shares."""

    device: Device = "cpu"
    transfer_backend: Backend = "mooncake_tcp"
    kv_cache_dtype: str = "auto"
    host: str = "127.0.0.1"  # what the server listens on (HTTP, bootstrap)
    advertise: str | None = None  # the address other hosts reach it at (default: host)
    net_device: str | None = None  # the interface of that address (UCX_NET_DEVICES on CPU)
    transfer_ports: PortRange | None = None  # the transfer engines' listening ports
    api_key: str | None = None  # SGLang's --api-key: only the gateway (which sends it) gets in
    # the cluster's reasoning tasks' parser: both legs then apply a grammar after the thinking
    reasoning_parser: str | None = None
    max_total_tokens: int | None = 4096
    extra_args: list[str] = []
    cpus: str | None = None  # run under `taskset -c CPUS`
    extra_env: dict[str, str] = {}


class LoraServing(msgspec.Struct, frozen=True):
    """A multi-LoRA server (a prefill pool's; mode multi_lora: a decode server's too): the
    adapters it starts with and its limits."""

    adapters: dict[str, str]  # name (the task) -> adapter folder
    max_rank: int
    target_modules: tuple[str, ...]
    max_per_batch: int
    max_loaded: int | None = None

    def argv(self, device: Device) -> list[str]:
        argv = ["--enable-lora", "--max-lora-rank", str(self.max_rank), "--lora-target-modules"]
        argv += [*self.target_modules, "--max-loras-per-batch", str(self.max_per_batch)]
        if self.max_loaded is not None:
            argv += ["--max-loaded-loras", str(self.max_loaded)]
        if self.adapters:
            argv += ["--lora-paths", *(f"{name}={path}" for name, path in self.adapters.items())]
        if device == "cpu":
            argv += ["--lora-backend", "torch_native"]  # csgmv (the default) fails on CPU
        return argv


class ServerSpec(msgspec.Struct, frozen=True):
    """One server: its role, checkpoint, ports and name."""

    role: Role
    name: str  # "prefill:math:0", "decode:0"
    model_path: str
    port: int
    dtype: str  # explicit, never "auto"
    options: ServeOptions
    bootstrap_port: int | None = None  # prefill only
    served_model_name: str | None = None
    lora: LoraServing | None = None  # a multi-LoRA server (decode: mode multi_lora only)
    host_name: str | None = None  # where it runs (the cluster file's hosts:); None: this machine
    # torch.distributed's TCPStore (SGLang's --nccl-port): listens on every interface, so it is
    # named rather than left to SGLang's random pick; only its own ranks (this host) connect.
    dist_port: int | None = None

    @property
    def address(self) -> str | None:
        """Where the other hosts reach it (None: bound to every interface, none given)."""
        opts = self.options
        return opts.advertise or (None if opts.host in ("0.0.0.0", "::") else opts.host)

    @property
    def url(self) -> str:
        return f"http://{self.address or '127.0.0.1'}:{self.port}"

    def argv(self) -> list[str]:
        opts = self.options
        argv = pinned(opts.cpus) + [
            sys.executable,
            "-m",
            "sglang.launch_server",
            "--model-path",
            self.model_path,
            "--host",
            opts.host,
            "--port",
            str(self.port),
            "--device",
            opts.device,
            "--dtype",
            self.dtype,
            "--kv-cache-dtype",
            opts.kv_cache_dtype,
            "--disaggregation-mode",
            self.role,
            "--disaggregation-transfer-backend",
            opts.transfer_backend,
            # Both legs compile the request's grammar; the gateway checks it with xgrammar first.
            "--grammar-backend",
            GRAMMAR_BACKEND,
        ]
        if self.served_model_name:
            argv += ["--served-model-name", self.served_model_name]
        if opts.api_key:
            argv.append(f"--api-key={opts.api_key}")
        if opts.reasoning_parser:
            argv += ["--reasoning-parser", opts.reasoning_parser]
        if self.dist_port is not None:
            argv += ["--nccl-port", str(self.dist_port)]
        if opts.max_total_tokens:
            argv += ["--max-total-tokens", str(opts.max_total_tokens)]
        if self.role == "prefill":
            assert self.bootstrap_port is not None, "a prefill server needs a bootstrap port"
            argv += ["--disaggregation-bootstrap-port", str(self.bootstrap_port)]
        if self.lora is not None:
            argv += self.lora.argv(opts.device)
        if opts.device == "cpu":
            argv += CPU_FLAGS
            if self.role == "decode":
                # Keeps the prefill's KV across retraction (a CPU tensor copy) instead of the
                # pinned host pool, which needs CUDA. Never recompute the prompt with decode weights.
                argv += ["--disaggregation-decode-retraction-backup", "cpu_tensor"]
        return argv + list(opts.extra_args)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        opts, address = self.options, self.address
        if address:
            # What the bootstrap, ZMQ control and transfer endpoints advertise (and ZMQ binds):
            # else SGLang guesses from the default route, or fails where there is none.
            env["SGLANG_HOST_IP"] = address
        no_proxy = [a for a in (address, "localhost", "127.0.0.1") if a]
        env["NO_PROXY"] = env["no_proxy"] = ",".join(dict.fromkeys(no_proxy))
        if opts.transfer_backend == "mooncake_tcp":
            env["MC_FORCE_TCP"] = "1"
        if opts.transfer_ports is not None:
            env.update(opts.transfer_ports.env())
        if opts.device == "cpu":
            env["SGLANG_USE_CPU_ENGINE"] = "1"
            # UCX offers every interface it may use; a peer on another host dialling this
            # host's loopback address reaches itself and the transfer hangs.
            if opts.net_device:
                env["UCX_NET_DEVICES"] = opts.net_device
            elif address is None or is_loopback(address):
                env.setdefault("UCX_NET_DEVICES", "lo")
        env.update(opts.extra_env)
        return env
