"""Kubernetes manifests (core kinds only) for the cluster a cluster file describes.

One namespace holds one cluster. Objects: the Secret sun-secrets; per full-copy task a StatefulSet
and headless Service prefill-<task>; per multi-LoRA pool prefill-pool-<pool>; the decode pool
decode (mode conventional: decode-<task> per task); the gateway's ConfigMap gateway-config,
Deployment and Service gateway; NetworkPolicies sun-prefill, sun-decode, sun-gateway.

Pod labels, for selectors (sgl-model-gateway's --prefill-selector / --decode-selector too):
  app.kubernetes.io/name=sun-sglang
  app.kubernetes.io/component=prefill | decode | gateway
  sun-sglang/cluster=<name>
  sun-sglang/task=<task> (full-copy prefill; conventional decode) or sun-sglang/pool=<pool>
  sun-sglang/set=<StatefulSet>
Prefill pods carry the annotation sglang.ai/bootstrap-port; every server listens on first_port
(one --service-discovery-port for all).
"""

from __future__ import annotations

import secrets
from typing import Any

import yaml

from sun_sglang.launch.config import ClusterConfig
from sun_sglang.launch.k8s.options import K8sOptions, dns_label
from sun_sglang.launch.k8s.security import discovery_rbac, network_policies, secret
from sun_sglang.launch.k8s.topology import plan
from sun_sglang.launch.k8s.workloads import Manifest, gateway, headless_service, statefulset

__all__ = ["K8sOptions", "dns_label", "dump", "manifests"]


def manifests(config: ClusterConfig, options: K8sOptions) -> list[Manifest]:
    """Without a cluster_key in the file, a random one: the servers are never open (each
    generation makes a new one: apply the whole output, or set cluster_key)."""
    k8s_plan = plan(config, options)
    docs = [secret(config, options, config.cluster_key or secrets.token_hex(32))]
    for server_set in k8s_plan.sets:
        docs += [headless_service(server_set, options), statefulset(server_set, options)]
    docs += gateway(k8s_plan.gateway, options)
    docs += network_policies(config, options)
    if options.discovery_rbac:
        docs += discovery_rbac(options)
    return docs


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # shared dicts written out, not as &id001 / *id001
        return True


def _str(dumper: yaml.SafeDumper, text: str) -> Any:
    # Multi-line strings (the gateway's JSON) as literal blocks, readable in the output.
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def dump(docs: list[Manifest]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
