"""What a Kubernetes deployment adds to a cluster file: image, namespace, model volume, GPUs, RDMA."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import msgspec

_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")


def dns_label(what: str, name: str) -> str:
    """A name as a DNS label (lower case, '-' for '_' and '.'); ValueError if it cannot be one."""
    label = name.lower().replace("_", "-").replace(".", "-")
    if not _DNS_LABEL.match(label):
        raise ValueError(f"{what} {name!r}: not usable as a Kubernetes name ({label!r} is no DNS label)")
    return label


def label_value(what: str, value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError(f"{what} {value!r}: not a Kubernetes label value (63 characters, alphanumeric ends)")
    return value


class K8sOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The model volume holds every checkpoint and adapter; it is mounted at `models_mount` in
    every pod, so the cluster file's paths are paths in it (under `models_mount`)."""

    name: str = "sun"  # the label sun-sglang/cluster
    image: str = "sun-sglang:latest"  # built from the Dockerfile (SGLang's image + this package)
    namespace: str = "default"
    models_pvc: str | None = "sun-models"  # a PersistentVolumeClaim, mounted read-only, or:
    models_host_path: str | None = None  # a folder on every node (hostPath)
    models_mount: str = "/models"
    gpus: int = 1  # per server (> 1: --tp-size)
    rdma_device: str | None = None  # e.g. mlx5_0: --disaggregation-ib-device, rdma/hca, IPC_LOCK
    shm_size: str = "16Gi"  # the /dev/shm memory emptyDir
    cluster_domain: str = "cluster.local"
    discovery_rbac: bool = False  # a ServiceAccount that sgl-model-gateway's pod discovery can use
    admin_headroom: int = 4  # per set: ordinals past replicas that the admin API may join

    def __post_init__(self) -> None:
        dns_label("namespace", self.namespace)
        label_value("cluster name", self.name)
        dns_label("cluster name", self.name)
        if (self.models_pvc is None) == (self.models_host_path is None):
            raise ValueError("the model volume: give a PVC claim name or a host path, one of them")
        if not PurePosixPath(self.models_mount).is_absolute():
            raise ValueError(f"models mount {self.models_mount!r}: give an absolute path")
        if self.gpus < 1 or self.admin_headroom < 0:
            raise ValueError("gpus must be at least 1, admin_headroom at least 0")

    def model_path(self, what: str, path: str) -> str:
        """A path of the cluster file, as given, if it is in the model volume."""
        mount = PurePosixPath(self.models_mount)
        given = PurePosixPath(path)
        if not given.is_absolute():
            raise ValueError(
                f"{what}: {path!r} is not a path: on Kubernetes give the checkpoint's path in the "
                f"model volume (mounted at {mount}), e.g. {mount / path}"
            )
        if given != mount and mount not in given.parents:
            raise ValueError(f"{what}: {path!r} is not in the model volume (mounted at {mount})")
        return path
