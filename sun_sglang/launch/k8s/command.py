"""`python -m sun_sglang.launch k8s`: the manifests of a cluster file, to a file or stdout."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.k8s import K8sOptions, dns_label, dump, manifests


def add_parser(sub: argparse._SubParsersAction) -> None:
    kube = sub.add_parser("k8s", help="Kubernetes manifests for a cluster file")
    kube.add_argument("--config", required=True)
    kube.add_argument("--out", default="-", help="a file (written 0600: it holds the Secret), - for stdout")
    kube.add_argument("--image", default="sun-sglang:latest")
    kube.add_argument("--namespace", default="default")
    kube.add_argument("--name", help="the label sun-sglang/cluster (default: the file's name)")
    kube.add_argument("--models-pvc", help="the model volume's PVC (default sun-models)")
    kube.add_argument("--models-host-path", help="the model volume as a folder on every node instead")
    kube.add_argument("--models-mount", default="/models", help="where pods see it: the file's paths")
    kube.add_argument("--gpus", type=int, default=1, help="per server (more: --tp-size)")
    kube.add_argument("--rdma-device", help="e.g. mlx5_0: --disaggregation-ib-device, rdma/hca, IPC_LOCK")
    kube.add_argument("--cluster-domain", default="cluster.local", help="the cluster's DNS domain")
    kube.add_argument("--discovery-rbac", action="store_true", help="RBAC for sgl-model-gateway's discovery")


def run(args: argparse.Namespace) -> int:
    try:
        options = K8sOptions(
            name=args.name or dns_label("cluster name", Path(args.config).stem),
            image=args.image,
            namespace=args.namespace,
            models_pvc=args.models_pvc or (None if args.models_host_path else "sun-models"),
            models_host_path=args.models_host_path,
            models_mount=args.models_mount,
            gpus=args.gpus,
            rdma_device=args.rdma_device,
            discovery_rbac=args.discovery_rbac,
            cluster_domain=args.cluster_domain,
        )
        text = dump(manifests(cluster_config.load(args.config), options))
        if args.out == "-":
            sys.stdout.write(text)
        else:  # it holds the Secret: readable by its owner only
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(text)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
