"""The Secret, the NetworkPolicies and (on request) the RBAC objects of sgl-model-gateway's discovery.

NetworkPolicies (Ingress; pods by the labels app.kubernetes.io/component and sun-sglang/cluster):
- servers' HTTP port: from gateway pods only;
- prefill bootstrap port: from decode pods only;
- SGLang's ZMQ control ports (pyzmq binds port 0: the pod's ephemeral range, control_ports if
  set, else Linux's default 32768-60999) and the transfer engines' ports
  (the cluster's transfer_ports): between prefill and decode pods only. Without transfer_ports
  (mooncake and UCX pick theirs at random) every port is open between prefill and decode pods;
- the gateway's port: from anywhere.
"""

from __future__ import annotations

from typing import Any

import msgspec

from router.config import GatewaySecrets
from sun_sglang.launch.config import ClusterConfig
from sun_sglang.launch.k8s.options import K8sOptions
from sun_sglang.launch.k8s.topology import CLUSTER, COMPONENT, SECRET, labels, server_ports

Manifest = dict[str, Any]
LINUX_EPHEMERAL = (32768, 60999)  # net.ipv4.ip_local_port_range's default: where ZMQ binds unless set
DISCOVERY = "sgl-model-gateway"


def secret(config: ClusterConfig, options: K8sOptions, cluster_key: str) -> Manifest:
    """secrets.json for `router --secrets`, and SUN_CLUSTER_KEY for the servers' --api-key."""
    router = config.router
    gateway = GatewaySecrets(
        api_keys=router.api_keys, admin_token=router.admin_token, server_api_key=cluster_key
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": SECRET, "namespace": options.namespace, "labels": labels(options, "secrets")},
        "stringData": {"secrets.json": msgspec.json.encode(gateway).decode(), "SUN_CLUSTER_KEY": cluster_key},
    }


def _tcp(port: int, end: int | None = None) -> Manifest:
    return {"protocol": "TCP", "port": port, **({"endPort": end} if end is not None else {})}


def network_policies(config: ClusterConfig, options: K8sOptions) -> list[Manifest]:
    def pods(component: str) -> Manifest:
        return {"matchLabels": {CLUSTER: options.name, COMPONENT: component}}

    def rule(component: str, ports: list[Manifest] | None) -> Manifest:
        return {"from": [{"podSelector": pods(component)}], **({"ports": ports} if ports is not None else {})}

    def policy(component: str, ingress: list[Manifest]) -> Manifest:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"sun-{component}",
                "namespace": options.namespace,
                "labels": labels(options, component),
            },
            "spec": {"podSelector": pods(component), "policyTypes": ["Ingress"], "ingress": ingress},
        }

    port, bootstrap = server_ports(config)
    ranges = config.transfer_ports
    control = (
        (config.control_ports.low, config.control_ports.high) if config.control_ports else LINUX_EPHEMERAL
    )
    peer = None if ranges is None else [_tcp(*control), _tcp(ranges.low, ranges.high)]
    from_decode = None if peer is None else [_tcp(bootstrap), *peer]
    http = _tcp(port)
    return [
        policy("prefill", [rule("gateway", [http]), rule("decode", from_decode)]),
        policy("decode", [rule("gateway", [http]), rule("prefill", peer)]),
        policy("gateway", [{"ports": [_tcp(config.router.port)]}]),  # no `from`: any source
    ]


def discovery_rbac(options: K8sOptions) -> list[Manifest]:
    """A ServiceAccount allowed to get/list/watch pods: what sgl-model-gateway's discovery needs."""
    meta = {"name": DISCOVERY, "namespace": options.namespace, "labels": labels(options, "gateway")}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "subjects": [{"kind": "ServiceAccount", "name": DISCOVERY, "namespace": options.namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": DISCOVERY},
        },
    ]
