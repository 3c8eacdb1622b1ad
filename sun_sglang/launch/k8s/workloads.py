"""The workloads: a StatefulSet and headless Service per server set, the gateway's ConfigMap,
Deployment and Service."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from router.config import GatewayConfig
from sun_sglang.launch.k8s.options import K8sOptions
from sun_sglang.launch.k8s.topology import (
    BOOTSTRAP_ANNOTATION,
    CLUSTER,
    GATEWAY,
    SECRET,
    SET,
    ServerSet,
    labels,
)

Manifest = dict[str, Any]
CONFIG_DIR, SECRETS_DIR = "/etc/sun", "/etc/sun-secrets"


def _metadata(name: str, options: K8sOptions, object_labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace, "labels": object_labels}


def _probes(start_failures: int) -> dict[str, Any]:
    # /health needs no API key on SGLang servers (sglang/srt/utils/auth.py) nor on the gateway.
    get = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 10}
    return {
        "startupProbe": {**get, "periodSeconds": 10, "failureThreshold": start_failures},
        "readinessProbe": {**get, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**get, "periodSeconds": 30, "failureThreshold": 6, "timeoutSeconds": 20},
    }


def _models(options: K8sOptions) -> tuple[Manifest, Manifest]:
    """The model volume and its read-only mount."""
    if options.models_pvc is not None:
        source: Manifest = {"persistentVolumeClaim": {"claimName": options.models_pvc, "readOnly": True}}
    else:
        source = {"hostPath": {"path": options.models_host_path, "type": "Directory"}}
    return {"name": "models", **source}, {
        "name": "models",
        "mountPath": options.models_mount,
        "readOnly": True,
    }


def _pod_ip(name: str) -> Manifest:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def statefulset(s: ServerSet, options: K8sOptions) -> Manifest:
    env = [
        _pod_ip("POD_IP"),  # the args' $(POD_IP): --advertise
        _pod_ip("SGLANG_HOST_IP"),  # what ZMQ binds and the bootstrap advertises
        {
            "name": "SUN_CLUSTER_KEY",
            "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "SUN_CLUSTER_KEY"}},
        },
        *({"name": k, "value": v} for k, v in s.env.items()),
    ]
    ports = [{"name": "http", "containerPort": s.port}]
    if s.bootstrap_port is not None:
        ports.append({"name": "bootstrap", "containerPort": s.bootstrap_port})
    limits = {"nvidia.com/gpu": options.gpus} if s.device == "cuda" else {}
    if options.rdma_device:
        limits["rdma/hca"] = 1
    models, models_mount = _models(options)
    container: Manifest = {
        "name": s.role,
        "image": options.image,
        "command": ["python", "-m", "sun_sglang.launch"],  # the role checks the module, then is SGLang
        "args": s.args,
        "env": env,
        "ports": ports,
        "resources": {"limits": limits},
        "volumeMounts": [models_mount, {"name": "dshm", "mountPath": "/dev/shm"}],
        **_probes(start_failures=120),
    }
    if options.rdma_device:
        container["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    template: Manifest = {"labels": s.labels}
    if s.bootstrap_port is not None:
        template["annotations"] = {BOOTSTRAP_ANNOTATION: str(s.bootstrap_port)}
    pod = {
        "containers": [container],
        "volumes": [
            models,
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": options.shm_size}},
        ],
        # Service links put every Service's address in the environment as NAME_PORT=...: noise.
        "enableServiceLinks": False,
    }
    if s.control_ports is not None:  # a namespaced, "safe" sysctl: no node setting needed
        span = f"{s.control_ports.low} {s.control_ports.high}"
        pod["securityContext"] = {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": span}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(s.name, options, s.labels),
        "spec": {
            "serviceName": s.name,
            "replicas": s.replicas,
            "podManagementPolicy": "Parallel",  # not one pod's long start-up after another
            "selector": {"matchLabels": {CLUSTER: options.name, SET: s.name}},
            "template": {"metadata": template, "spec": pod},
        },
    }


def headless_service(s: ServerSet, options: K8sOptions) -> Manifest:
    ports = [{"name": "http", "port": s.port, "targetPort": "http"}]
    if s.bootstrap_port is not None:
        ports.append({"name": "bootstrap", "port": s.bootstrap_port, "targetPort": "bootstrap"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(s.name, options, s.labels),
        "spec": {
            "clusterIP": "None",  # headless: a DNS name per pod, <set>-<i>.<set>.<namespace>.svc...
            # The names resolve before a pod is Ready: the gateway's own health checks decide.
            "publishNotReadyAddresses": True,
            "selector": {CLUSTER: options.name, SET: s.name},
            "ports": ports,
        },
    }


def gateway(config: GatewayConfig, options: K8sOptions) -> list[Manifest]:
    """ConfigMap, Deployment and Service of `python -m router`; secrets come from the Secret."""
    gateway_labels = labels(options, "gateway", **{SET: GATEWAY})
    config_json = msgspec.json.format(msgspec.json.encode(config), indent=2).decode()
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(f"{GATEWAY}-config", options, gateway_labels),
        "data": {"gateway.json": config_json},
    }
    models, models_mount = _models(options)  # the tasks' tokenizers
    container = {
        "name": GATEWAY,
        "image": options.image,
        "command": ["python", "-m", "router"],
        "args": [
            *("--config", f"{CONFIG_DIR}/gateway.json", "--secrets", f"{SECRETS_DIR}/secrets.json"),
        ],
        "ports": [{"name": "http", "containerPort": config.port}],
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
            models_mount,
        ],
        **_probes(start_failures=30),
    }
    pod = {
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": f"{GATEWAY}-config"}},
            {
                "name": "secrets",
                "secret": {"secretName": SECRET, "items": [{"key": "secrets.json", "path": "secrets.json"}]},
            },
            models,
        ],
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": int(config.shutdown_timeout_s) + 10,  # the drain, then a margin
    }
    # A changed config changes the pod template: re-applying rolls the gateway.
    checksum = {"sun-sglang/config-sha256": hashlib.sha256(config_json.encode()).hexdigest()}
    selector = {CLUSTER: options.name, SET: GATEWAY}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(GATEWAY, options, gateway_labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": gateway_labels, "annotations": checksum}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(GATEWAY, options, gateway_labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": config.port, "targetPort": "http"}],
        },
    }
    return [config_map, deployment, service]
