"""Kubernetes manifests: valid for the API server's schemas (kubernetes-validate --strict, offline),
and wired right: per-pod bootstrap hosts, probes, secrets only in the Secret, NetworkPolicies."""

from __future__ import annotations

import copy
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from router.config import GatewayConfig, GatewaySecrets, with_secrets
from sun_sglang.launch import config as cluster_config
from sun_sglang.launch import role_command
from sun_sglang.launch.__main__ import main as launch_main
from sun_sglang.launch.k8s import KEY_DIGEST, K8sOptions, dump, manifests

NS = "sun-test"
SECRETS = ("client-key-123", "admin-token-456", "cluster-key-789")

FULL_COPY = """
base: /models/base
tasks:
  math: {model_path: /models/math, replicas: 2}
  code: {model_path: /models/code}
decode: {replicas: 2}
transfer_backend: mooncake
transfer_ports: {low: 20000, high: 20999}
router: {port: 8080, api_keys: [client-key-123], admin_token: admin-token-456}
cluster_key: cluster-key-789
prefill_env: {MC_GID_INDEX: "3"}
prefill_args: [--chunked-prefill-size, "4096"]
"""
LORA_POOL = """
base: /models/base
tasks:
  math: {adapter: /models/adapters/math, pool: lora}
  code_v2: {adapter: /models/adapters/code, pool: lora}
prefill_pools:
  lora: {replicas: 2, max_lora_rank: 16, max_loaded_loras: 4}
router: {api_keys: [client-key-123], admin_token: admin-token-456}
cluster_key: cluster-key-789
"""
# A QSUN base: the packed checkpoint of the QSUN folder (what a GPU decode server serves).
QSUN = """
base: /models/base-qsun  # a QSUN folder: the roles serve its packed/ on a GPU
tasks:
  math: {model_path: /models/math-qsun, replicas: 3}
decode: {replicas: 1}
transfer_backend: nixl
cluster_key: cluster-key-789
"""
CLUSTERS = {"full_copy": FULL_COPY, "lora_pool": LORA_POOL, "qsun": QSUN}


def _config(text: str) -> cluster_config.ClusterConfig:
    return msgspec.yaml.decode(text.encode(), type=cluster_config.ClusterConfig)


def _docs(text: str, **options: Any) -> list[dict[str, Any]]:
    return manifests(_config(text), K8sOptions(namespace=NS, name="t", **options))


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][0]


def _gateway(docs: list[dict[str, Any]]) -> GatewayConfig:
    (config_map,) = _kind(docs, "ConfigMap")
    return msgspec.json.decode(config_map["data"]["gateway.json"], type=GatewayConfig)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_generated_manifests_pass_strict_validation(name: str, tmp_path: Path) -> None:
    cluster_file = tmp_path / f"{name}.yaml"
    cluster_file.write_text(CLUSTERS[name])
    out = tmp_path / "manifests.yaml"
    args = ["k8s", "--config", str(cluster_file), "--namespace", NS, "--out", str(out), "--discovery-rbac"]
    assert launch_main(args) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds the Secret
    result = _validate(out)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(out.read_text())}
    assert {"StatefulSet", "Service", "Deployment", "ConfigMap", "Secret", "NetworkPolicy"} <= kinds


def test_validation_fails_on_an_unknown_field(tmp_path: Path) -> None:
    docs = _docs(FULL_COPY)
    broken = copy.deepcopy(docs)
    _container(_kind(broken, "StatefulSet")[0])["gpuCount"] = 1
    (tmp_path / "good.yaml").write_text(dump(docs))
    (tmp_path / "broken.yaml").write_text(dump(broken))
    assert _validate(tmp_path / "good.yaml").returncode == 0
    assert _validate(tmp_path / "broken.yaml").returncode != 0


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_each_prefill_pod_is_its_own_bootstrap_host(name: str) -> None:
    docs = _docs(CLUSTERS[name])
    services = {s["metadata"]["name"]: s for s in _kind(docs, "Service")}
    expected: set[tuple[str, int]] = set()
    for sts in _kind(docs, "StatefulSet"):
        if _container(sts)["name"] != "prefill":
            continue
        spec, args = sts["spec"], _container(sts)["args"]
        service = services[spec["serviceName"]]
        assert service["spec"]["clusterIP"] == "None"
        bootstrap = int(_flag(args, "--bootstrap-port"))
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["sglang.ai/bootstrap-port"] == str(bootstrap)
        for i in range(spec["replicas"]):
            host = f"{sts['metadata']['name']}-{i}.{service['metadata']['name']}.{NS}.svc.cluster.local"
            expected.add((host, bootstrap))
    gateway = _gateway(docs)
    workers = [w for t in gateway.tasks.values() for w in t.prefill]
    workers += [w for pool in gateway.prefill_pools.values() for w in pool]
    assert {(w.bootstrap_host, w.bootstrap_port) for w in workers} == expected
    assert len(workers) == len(expected)


def test_gateway_routes_every_task_to_per_pod_workers() -> None:
    gateway = _gateway(_docs(LORA_POOL))
    assert set(gateway.tasks) == {"math", "code_v2"}
    for task, route in gateway.tasks.items():
        assert (route.pool, route.adapter, route.model_path) == ("lora", task, "/models/base")
    assert gateway.decode == [f"http://decode-0.decode.{NS}.svc.cluster.local:30000"]
    assert gateway.host == "0.0.0.0"
    full = _gateway(_docs(FULL_COPY))
    assert full.tasks["math"].model_path == "/models/math" and len(full.tasks["math"].prefill) == 2
    assert f"prefill-math-2.prefill-math.{NS}.svc.cluster.local" in full.admin_allowed_hosts


def test_lora_pool_serves_the_base_with_every_adapter() -> None:
    (sts,) = [
        s for s in _kind(_docs(LORA_POOL), "StatefulSet") if s["metadata"]["name"] == "prefill-pool-lora"
    ]
    args = _container(sts)["args"]
    assert args[0] == "prefill" and _flag(args, "--model-path") == "/models/base"
    assert _flag(args, "--decode-model-path") == "/models/base"
    assert "--enable-lora" in args and _flag(args, "--max-lora-rank") == "16"
    assert _flag(args, "--max-loaded-loras") == "4" and _flag(args, "--max-loras-per-batch") == "8"
    paths = args[args.index("--lora-paths") + 1 :][:2]
    assert paths == ["math=/models/adapters/math", "code_v2=/models/adapters/code"]
    assert sts["spec"]["template"]["metadata"]["labels"]["sun-sglang/pool"] == "lora"


def test_qsun_base_is_served_and_checked_against_as_given() -> None:
    docs = _docs(QSUN)
    by_name = {s["metadata"]["name"]: _container(s)["args"] for s in _kind(docs, "StatefulSet")}
    assert by_name["decode"][:3] == ["decode", "--model-path", "/models/base-qsun"]
    prefill = by_name["prefill-math"]
    assert prefill[0] == "prefill" and _flag(prefill, "--decode-model-path") == "/models/base-qsun"
    assert _flag(prefill, "--model-path") == "/models/math-qsun"


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_servers_probe_health_and_take_their_address_from_the_pod(name: str) -> None:
    docs = _docs(CLUSTERS[name])
    for workload in _kind(docs, "StatefulSet") + _kind(docs, "Deployment"):
        container = _container(workload)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
        if workload["kind"] == "Deployment":
            assert container["args"][-2:] == ["--secrets", "/etc/sun-secrets/secrets.json"]
            continue
        assert (
            container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 1200
        )
        env = {e["name"]: e for e in container["env"]}
        for var in ("SGLANG_HOST_IP", "POD_IP"):
            assert env[var]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert env["SUN_CLUSTER_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "sun-secrets",
            "key": "SUN_CLUSTER_KEY",
        }
        args = container["args"]
        assert _flag(args, "--host") == "0.0.0.0" and _flag(args, "--advertise") == "$(POD_IP)"
        assert "--api-key=$(SUN_CLUSTER_KEY)" in args and _flag(args, "--device") == "cuda"
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
        pod = workload["spec"]["template"]["spec"]
        shm = {v["name"]: v for v in pod["volumes"]}["dshm"]
        assert shm["emptyDir"]["medium"] == "Memory"
        assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]


def test_headless_services_select_their_statefulsets_pods() -> None:
    docs = _docs(FULL_COPY)
    services = {s["metadata"]["name"]: s for s in _kind(docs, "Service")}
    for sts in _kind(docs, "StatefulSet"):
        service = services[sts["spec"]["serviceName"]]
        pod_labels = sts["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["clusterIP"] == "None"
        assert _selects(service["spec"]["selector"], pod_labels)
        assert _selects(sts["spec"]["selector"]["matchLabels"], pod_labels)
    assert services["gateway"]["spec"]["type"] == "ClusterIP"
    assert services["gateway"]["spec"]["ports"][0]["port"] == 8080


def test_secrets_are_only_in_the_secret() -> None:
    docs = _docs(FULL_COPY)
    (secret,) = _kind(docs, "Secret")
    others = yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])
    for value in SECRETS:
        assert value not in others
    held = msgspec.json.decode(secret["stringData"]["secrets.json"], type=GatewaySecrets)
    assert held == GatewaySecrets(["client-key-123"], "admin-token-456", "cluster-key-789")
    assert secret["stringData"]["SUN_CLUSTER_KEY"] == "cluster-key-789"
    merged = with_secrets(_gateway(docs), held)
    assert (merged.api_keys, merged.admin_token, merged.server_api_key) == (["client-key-123"], *SECRETS[1:])


def test_a_cluster_key_is_required_and_a_new_one_rolls_every_pod() -> None:
    with pytest.raises(ValueError, match="launch k8s needs cluster_key"):
        _docs(LORA_POOL.replace("cluster_key: cluster-key-789\n", ""))

    def digests(text: str) -> set[str]:
        pods = _kind(_docs(text), "StatefulSet") + _kind(_docs(text), "Deployment")
        return {d["spec"]["template"]["metadata"]["annotations"][KEY_DIGEST] for d in pods}

    before, after = digests(LORA_POOL), digests(LORA_POOL.replace("cluster-key-789", "cluster-key-790"))
    assert len(before) == len(after) == 1 and before != after
    assert "cluster-key-789" not in before.pop()


def test_network_policies_open_each_port_to_its_peers_only() -> None:
    docs = _docs(FULL_COPY)
    pods = {
        w["spec"]["template"]["spec"]["containers"][0]["name"]: w["spec"]["template"]["metadata"]["labels"]
        for w in _kind(docs, "StatefulSet") + _kind(docs, "Deployment")
    }
    policies = {p["metadata"]["name"]: p["spec"] for p in _kind(docs, "NetworkPolicy")}
    for component in ("prefill", "decode", "gateway"):
        spec = policies[f"sun-{component}"]
        assert [c for c, lab in pods.items() if _selects(spec["podSelector"]["matchLabels"], lab)] == [
            component
        ]
        assert spec["policyTypes"] == ["Ingress"]

    def rules(component: str) -> dict[str, set[tuple[int, int | None]]]:
        found = {}
        for rule in policies[f"sun-{component}"]["ingress"]:
            (source,) = rule["from"]
            (peer,) = [c for c, lab in pods.items() if _selects(source["podSelector"]["matchLabels"], lab)]
            found[peer] = {(p["port"], p.get("endPort")) for p in rule["ports"]}
        return found

    zmq, transfer = (32768, 60999), (20000, 20999)  # Linux's ephemeral range: no control_ports set
    assert rules("prefill") == {"gateway": {(30000, None)}, "decode": {(30500, None), zmq, transfer}}
    assert rules("decode") == {"gateway": {(30000, None)}, "prefill": {zmq, transfer}}
    (open_rule,) = policies["sun-gateway"]["ingress"]
    assert "from" not in open_rule and open_rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    # Without transfer_ports the engines pick their ports: all of them, between prefill and decode.
    qsun = {p["metadata"]["name"]: p["spec"] for p in _kind(_docs(QSUN), "NetworkPolicy")}
    assert "ports" not in qsun["sun-decode"]["ingress"][1]


def test_rdma_and_several_gpus() -> None:
    docs = _docs(FULL_COPY, rdma_device="mlx5_0", gpus=4)
    for sts in _kind(docs, "StatefulSet"):
        container = _container(sts)
        assert _flag(container["args"], "--disaggregation-ib-device") == "mlx5_0"
        assert _flag(container["args"], "--tp-size") == "4"
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 4, "rdma/hca": 1}
        assert container["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}
    with pytest.raises(ValueError, match="mooncake_tcp"):
        _docs(
            FULL_COPY.replace("transfer_backend: mooncake", "transfer_backend: mooncake_tcp"), rdma_device="x"
        )


def test_conventional_mode_gives_each_task_its_own_decode_set() -> None:
    docs = _docs(FULL_COPY + "mode: conventional\n")
    names = {s["metadata"]["name"] for s in _kind(docs, "StatefulSet")}
    assert names == {"prefill-math", "prefill-code", "decode-math", "decode-code"}
    gateway = _gateway(docs)
    assert gateway.decode == [] and gateway.tasks["math"].decode == [
        f"http://decode-math-{i}.decode-math.{NS}.svc.cluster.local:30000" for i in range(2)
    ]


def test_host_path_model_volume() -> None:
    docs = _docs(QSUN, models_pvc=None, models_host_path="/data/models")
    for workload in _kind(docs, "StatefulSet") + _kind(docs, "Deployment"):
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert volumes["models"]["hostPath"] == {"path": "/data/models", "type": "Directory"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("/models/base", "tiny-llama"), "path in the model volume"),
        (("/models/math", "/elsewhere/math"), "not in the model volume"),
        (("prefill_env: {", "prefill_env: {SGLANG_HOST_IP: x, "), "set by the manifests"),
    ],
)
def test_refused_cluster_files(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _docs(FULL_COPY.replace(*change))


def test_task_names_become_dns_names() -> None:
    docs = _docs(FULL_COPY.replace("math: {", "Math_A: {"))
    (sts,) = [s for s in _kind(docs, "StatefulSet") if s["metadata"]["name"] == "prefill-math-a"]
    assert sts["spec"]["template"]["metadata"]["labels"]["sun-sglang/task"] == "Math_A"
    assert _flag(_container(sts)["args"], "--task") == "Math_A"
    with pytest.raises(ValueError, match="same Kubernetes name"):
        _docs(FULL_COPY.replace("  code: {", "  MATH: {"))
    with pytest.raises(ValueError, match="longer than 52"):
        _docs(FULL_COPY.replace("  code: {", f"  {'c' * 50}: {{"))


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cluster_file = tmp_path / "named.yaml"
    cluster_file.write_text(FULL_COPY.replace("/models/base", "tiny-llama"))
    assert launch_main(["k8s", "--config", str(cluster_file)]) == 2
    assert capsys.readouterr().err.startswith("error: base: 'tiny-llama' is not a path")
    assert launch_main(["k8s", "--config", str(cluster_file), "--gpus", "0"]) == 2
    assert "gpus must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_the_launcher_roles_parse_the_generated_args(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, list[str]]] = []
    monkeypatch.setattr(role_command, "run", lambda args, extra: seen.append((args, extra)) or 0)
    for sts in _kind(_docs(CLUSTERS[name]), "StatefulSet"):
        args = _container(sts)["args"]
        assert launch_main(args) == 0
        parsed, extra = seen.pop()
        assert (parsed.role, parsed.host, parsed.advertise, parsed.port) == (
            args[0],
            "0.0.0.0",
            "$(POD_IP)",
            30000,
        )
        assert parsed.device == "cuda" and parsed.model_path == _flag(args, "--model-path")
        assert extra[0] == "--api-key=$(SUN_CLUSTER_KEY)"  # then SGLang's own flags, in order
        assert args[-len(extra) :] == extra
        if parsed.role == "prefill":
            assert parsed.bootstrap_port == 30500 and parsed.decode_model_path.startswith("/models/base")


def test_control_ports_bound_the_pods_ephemeral_range_and_the_policies() -> None:
    docs = _docs(FULL_COPY + "control_ports: {low: 41000, high: 41999}\n")
    for sts in _kind(docs, "StatefulSet"):
        sysctls = sts["spec"]["template"]["spec"]["securityContext"]["sysctls"]
        assert sysctls == [{"name": "net.ipv4.ip_local_port_range", "value": "41000 41999"}]
    decode = next(p for p in _kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "sun-decode")
    ports = {(p["port"], p.get("endPort")) for p in decode["spec"]["ingress"][1]["ports"]}
    assert (41000, 41999) in ports and (32768, 60999) not in ports
