"""`python -m sun_sglang.launch prefill|decode`: one SUN role on this host, as an SGLang server.

The prefill module is checked against the decode module before SGLang starts; then the process
becomes the server (exec), with the cluster's pinned settings. Unknown flags pass through."""

from __future__ import annotations

import argparse
import os
import sys

from sun_sglang import compat
from sun_sglang.launch.hosts import PortRange
from sun_sglang.launch.roles import ServeOptions, ServerSpec, detect_device, kv_tokens
from sun_sglang.models import resolve_model
from sun_sglang.quant import decode_module


def add_parsers(sub: argparse._SubParsersAction) -> None:
    prefill = sub.add_parser("prefill", help="a task's prefill server")
    prefill.add_argument("--task", required=True)
    prefill.add_argument(
        "--decode-model-path", required=True, help="the shared decode module this prefill module must match"
    )
    prefill.add_argument("--bootstrap-port", type=int, default=8998)
    _add_serve_flags(prefill, 30100)
    decode = sub.add_parser("decode", help="a shared decode server")
    _add_serve_flags(decode, 30000)


def _add_serve_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (0.0.0.0: every interface)")
    parser.add_argument("--advertise", help="the address other hosts reach this server at (SGLANG_HOST_IP)")
    parser.add_argument("--transfer-ports", help="LOW-HIGH: the transfer engines' listening ports")
    parser.add_argument("--net-device", help="UCX_NET_DEVICES for NIXL on CPU (default: lo on loopback)")
    parser.add_argument(
        "--transfer-backend", default="mooncake_tcp", choices=["mooncake_tcp", "mooncake", "nixl"]
    )
    parser.add_argument("--dtype", default="auto", help="resolved to one explicit dtype")
    parser.add_argument("--kv-cache-dtype", default="auto")
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"])
    parser.add_argument("--max-total-tokens", type=int, default=None)
    parser.add_argument("--nccl-port", type=int, help="torch.distributed's port (default: --port + 1000)")


def _port_range(text: str | None) -> PortRange | None:
    if text is None:
        return None
    low, sep, high = text.partition("-")
    if not (sep and low.isdigit() and high.isdigit()):
        raise ValueError(f"--transfer-ports {text!r}: give LOW-HIGH, e.g. 20000-20999")
    return PortRange(int(low), int(high))


def _role_spec(args: argparse.Namespace, extra: list[str]) -> ServerSpec:
    device = args.device or detect_device()
    # A QSUN folder as the decode module (or a LoRA pool's base): its packed/ (GPU) or
    # dequantized/ (CPU) checkpoint; any other folder is itself.
    model = str(decode_module(resolve_model(args.model_path), device))
    reference = (
        str(decode_module(resolve_model(args.decode_model_path), device)) if args.role == "prefill" else model
    )
    dtype = compat.serving_dtype(compat.read_config(reference), args.dtype)
    if args.role == "prefill":
        # Refused here, before SGLang starts: a mismatched module would reach the shared decode pool.
        compat.check_prefill_module(model, reference, dtype, dtype)
    options = ServeOptions(
        device=device,
        transfer_backend=args.transfer_backend,
        kv_cache_dtype=args.kv_cache_dtype,
        host=args.host,
        advertise=args.advertise,
        net_device=args.net_device,
        transfer_ports=_port_range(args.transfer_ports),
        max_total_tokens=kv_tokens(args.max_total_tokens, device),
        extra_args=extra,
    )
    return ServerSpec(
        role=args.role,
        name=args.role,
        model_path=model,
        port=args.port,
        dtype=dtype,
        options=options,
        bootstrap_port=getattr(args, "bootstrap_port", None),
        served_model_name=getattr(args, "task", None),
        dist_port=args.nccl_port or args.port + 1000,
    )


def _redacted(argv: list[str]) -> list[str]:
    """The command line to show: the server key (--api-key KEY or --api-key=KEY) hidden."""
    shown = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "--api-key":
            arg = "***"
        elif arg.startswith("--api-key="):
            arg = "--api-key=***"
        shown.append(arg)
    return shown


def run(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        spec = _role_spec(args, extra)
    except (compat.IncompatibleCheckpoint, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    argv = spec.argv()
    print(" ".join(_redacted(argv)), file=sys.stderr)
    os.execve(argv[0], argv, spec.env())  # the role *is* the SGLang server
