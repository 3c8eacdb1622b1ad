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

import hashlib
from typing import Any

import yaml

from sun_sglang.launch.config import ClusterConfig
from sun_sglang.launch.k8s.options import K8sOptions, dns_label
from sun_sglang.launch.k8s.security import discovery_rbac, network_policies, secret
from sun_sglang.launch.k8s.topology import plan
from sun_sglang.launch.k8s.workloads import Manifest, gateway, headless_service, statefulset

__all__ = ["K8sOptions", "dns_label", "dump", "manifests"]


KEY_DIGEST = "sun-sglang/cluster-key-sha256"


def manifests(config: ClusterConfig, options: K8sOptions) -> list[Manifest]:
    """The cluster_key is required: one made up per run would differ from the running pods' after
    a re-apply. Its digest is in every pod template, so a new key rolls every pod."""
    if config.cluster_key is None:
        raise ValueError(
            "launch k8s needs cluster_key in the cluster file (every server's --api-key, kept in the "
            "Secret): python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    k8s_plan = plan(config, options)
    docs = [secret(config, options, config.cluster_key)]
    for server_set in k8s_plan.sets:
        docs += [headless_service(server_set, options), statefulset(server_set, options)]
    docs += gateway(k8s_plan.gateway, options)
    docs += network_policies(config, options)
    if options.discovery_rbac:
        docs += discovery_rbac(options)
    digest = hashlib.sha256(config.cluster_key.encode()).hexdigest()[:16]
    for doc in docs:
        if doc["kind"] in ("StatefulSet", "Deployment"):
            doc["spec"]["template"]["metadata"].setdefault("annotations", {})[KEY_DIGEST] = digest
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
