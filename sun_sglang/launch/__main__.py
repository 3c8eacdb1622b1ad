"""python -m sun_sglang.launch {prefill,decode,cluster}

  prefill  --task NAME --model-path CKPT --decode-model-path BASE [--port P --bootstrap-port B]
  decode   --model-path BASE [--port P]
  cluster  --config FILE.yaml [--this-host NAME]   (across hosts: run it on each, same file)
  k8s      --config FILE.yaml [--image IMG] [--namespace NS] [--out FILE|-]   (Kubernetes manifests)

Unknown flags of prefill/decode pass through to SGLang.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from sun_sglang import compat
from sun_sglang.launch import config as cluster_config
from sun_sglang.launch import role_command
from sun_sglang.launch.cluster import Cluster
from sun_sglang.launch.hosts import check_control_ports, local_addresses, this_host
from sun_sglang.launch.k8s import command as k8s_command
from sun_sglang.launch.plan import plan
from sun_sglang.launch.process import ServerFailed
from sun_sglang.launch.roles import device_for
from sun_sglang.launch.supervise import Supervisor
from sun_sglang.paths import home


def run_cluster(args: argparse.Namespace) -> int:
    try:
        config = cluster_config.load(args.config)
        device = device_for(config.device)
        interfaces = local_addresses()
        here = this_host(config.hosts, args.this_host, interfaces)
        cluster_plan = plan(config, device, interfaces)
    except (compat.IncompatibleCheckpoint, FileNotFoundError, ValueError) as err:
        # Every host plans the whole cluster (the gateway's routes, the rechecks before restarts).
        also = (
            " (every host needs every checkpoint at the same path)"
            if isinstance(err, FileNotFoundError)
            else ""
        )
        print(f"error: {err}{also}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log_dir = Path(config.log_dir) if config.log_dir else home() / "logs" / time.strftime("%Y%m%d-%H%M%S")
    if here:  # hosts may share a file system: each keeps its own logs and supervisor state
        log_dir = log_dir / "+".join(sorted(here))
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
    if config.control_ports and cluster.servers:
        check_control_ports(config.control_ports)
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
    role_command.add_parsers(sub)
    cluster = sub.add_parser("cluster", help="a whole local cluster and its gateway")
    cluster.add_argument("--config", required=True)
    cluster.add_argument(
        "--this-host", action="append", default=[], help="a host name of the file (default: by address)"
    )
    k8s_command.add_parser(sub)
    args, extra = parser.parse_known_args(argv)
    if args.role == "k8s":
        if extra:
            parser.error(f"unknown arguments: {' '.join(extra)}")
        return k8s_command.run(args)
    if args.role == "cluster":
        if extra:
            parser.error(f"unknown arguments: {' '.join(extra)}")
        return run_cluster(args)
    return role_command.run(args, extra)


if __name__ == "__main__":
    sys.exit(main())
