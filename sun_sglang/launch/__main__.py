"""python -m sun_sglang.launch {prefill,decode,cluster}

  prefill  --task NAME --model-path CKPT --decode-model-path BASE [--port P --bootstrap-port B]
  decode   --model-path BASE [--port P]
  cluster  --config FILE.yaml [--this-host NAME]   (across hosts: run it on each, same file)

Unknown flags of prefill/decode pass through to SGLang.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from sun_sglang import compat
from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.hosts import PortRange, local_addresses
from sun_sglang.launch.plan import plan
from sun_sglang.launch.process import ServerFailed
from sun_sglang.launch.roles import ServeOptions, ServerSpec, detect_device, device_for
from sun_sglang.launch.supervise import Supervisor
from sun_sglang.models import resolve_model
from sun_sglang.paths import home


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


def _port_range(text: str | None) -> PortRange | None:
    if text is None:
        return None
    low, sep, high = text.partition("-")
    if not (sep and low.isdigit() and high.isdigit()):
        raise ValueError(f"--transfer-ports {text!r}: give LOW-HIGH, e.g. 20000-20999")
    return PortRange(int(low), int(high))


def _role_spec(args: argparse.Namespace, extra: list[str]) -> ServerSpec:
    device = args.device or detect_device()
    model = resolve_model(args.model_path)
    reference = resolve_model(args.decode_model_path) if args.role == "prefill" else model
    dtype = compat.serving_dtype(compat.read_config(reference), args.dtype)
    if args.role == "prefill":
        # Refused here, before SGLang starts: a mismatched module would reach the shared decode pool.
        compat.check_prefill_module(model, reference, dtype, dtype)
    max_tokens = args.max_total_tokens or (4096 if device == "cpu" else None)
    options = ServeOptions(
        device=device,
        transfer_backend=args.transfer_backend,
        kv_cache_dtype=args.kv_cache_dtype,
        host=args.host,
        advertise=args.advertise,
        net_device=args.net_device,
        transfer_ports=_port_range(args.transfer_ports),
        max_total_tokens=max_tokens,
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
    )


def run_role(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        spec = _role_spec(args, extra)
    except (compat.IncompatibleCheckpoint, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    argv = spec.argv()
    print(" ".join(argv), file=sys.stderr)
    os.execve(argv[0], argv, spec.env())  # the role *is* the SGLang server


def _this_host(config: cluster_config.ClusterConfig, named: list[str], interfaces: dict[str, str]):
    """The hosts of the cluster file that this machine is: named, or those whose address is one
    of this machine's interfaces. None when the file has no hosts (everything runs here)."""
    if not config.hosts:
        if named:
            raise ValueError("--this-host: the cluster file has no hosts:")
        return None
    unknown = [n for n in named if n not in config.hosts]
    if unknown:
        raise ValueError(f"--this-host {unknown}: not in hosts: {sorted(config.hosts)}")
    here = named or [n for n, h in config.hosts.items() if h.address in interfaces]
    if not here:
        raise ValueError(
            f"no host of {sorted(config.hosts)} has an address of this machine: give --this-host NAME"
        )
    return frozenset(here)


def run_cluster(args: argparse.Namespace) -> int:
    try:
        config = cluster_config.load(args.config)
        device = device_for(config.device)
        interfaces = local_addresses()
        here = _this_host(config, args.this_host, interfaces)
        cluster_plan = plan(config, device, interfaces)
    except (compat.IncompatibleCheckpoint, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log_dir = Path(config.log_dir) if config.log_dir else home() / "logs" / time.strftime("%Y%m%d-%H%M%S")
    cluster = Cluster(cluster_plan, log_dir, config.startup_timeout_s, here)
    if not cluster.servers and not cluster.runs_gateway:
        print(
            f"error: nothing of this cluster is placed on host {', '.join(sorted(here or ()))}",
            file=sys.stderr,
        )
        return 2
    stop = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    where = f" (host {', '.join(sorted(here))})" if here else ""
    gateway = " and the gateway" if cluster.runs_gateway else ""
    print(
        f"starting {len(cluster.servers)} servers{gateway} on {device}{where}; logs in {log_dir}", flush=True
    )
    try:
        cluster.start()
    except ServerFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(cluster.describe(), indent=2), flush=True)
    if cluster.runs_gateway:
        print(f"gateway: {cluster.gateway_url}", flush=True)
    # From here only a signal stops everything: a server or the gateway that exits or hangs is
    # restarted (back-off), or left down after too many failures in a row, the rest serving.
    supervisor = Supervisor(cluster.procs, config.supervision, cluster.supervision_file, cluster.recheck)
    try:
        while not stop["now"]:
            supervisor.step()
            time.sleep(0.5)
        return 0
    finally:
        print("stopping the cluster", flush=True)
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sun_sglang.launch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="role", required=True)
    prefill = sub.add_parser("prefill", help="a task's prefill server")
    prefill.add_argument("--task", required=True)
    prefill.add_argument(
        "--decode-model-path", required=True, help="the shared decode module this prefill module must match"
    )
    prefill.add_argument("--bootstrap-port", type=int, default=8998)
    _add_serve_flags(prefill, 30100)
    decode = sub.add_parser("decode", help="a shared decode server")
    _add_serve_flags(decode, 30000)
    cluster = sub.add_parser("cluster", help="a whole local cluster and its gateway")
    cluster.add_argument("--config", required=True)
    cluster.add_argument(
        "--this-host", action="append", default=[], help="a host name of the file (default: by address)"
    )
    args, extra = parser.parse_known_args(argv)
    if args.role == "cluster":
        if extra:
            parser.error(f"unknown arguments: {' '.join(extra)}")
        return run_cluster(args)
    return run_role(args, extra)


if __name__ == "__main__":
    sys.exit(main())
