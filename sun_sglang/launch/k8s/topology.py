"""A cluster file as Kubernetes server sets (one StatefulSet and headless Service each) and the
gateway's config, whose worker URLs are the pods' own DNS names: the decode side must reach the
exact prefill pod of a request, which a Service name (any pod behind it) would not be."""

from __future__ import annotations

from dataclasses import dataclass

from router.config import GatewayConfig, PrefillWorker, TaskRoute
from sun_sglang.launch.config import ClusterConfig
from sun_sglang.launch.hosts import PortRange
from sun_sglang.launch.k8s.options import K8sOptions, dns_label, label_value
from sun_sglang.launch.roles import Device, LoraServing, Role

NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
CLUSTER = "sun-sglang/cluster"
TASK = "sun-sglang/task"
POOL = "sun-sglang/pool"
SET = "sun-sglang/set"  # one per StatefulSet: its selector
BOOTSTRAP_ANNOTATION = "sglang.ai/bootstrap-port"  # read by sgl-model-gateway's discovery
SECRET = "sun-secrets"  # secrets.json (the gateway's) and SUN_CLUSTER_KEY (the servers' --api-key)
GATEWAY = "gateway"  # its Deployment and Service; its ConfigMap is gateway-config
RESERVED_ENV = ("POD_IP", "SGLANG_HOST_IP", "SUN_CLUSTER_KEY")
_BOOTSTRAP_OFFSET = 500
_MAX_SET_NAME = 52


def server_ports(config: ClusterConfig) -> tuple[int, int]:
    """Every server's HTTP port and every prefill server's bootstrap port: each pod has its own
    address, and one port for all is what sgl-model-gateway's --service-discovery-port expects."""
    return config.first_port, config.first_port + _BOOTSTRAP_OFFSET


def labels(options: K8sOptions, component: str, **extra: str) -> dict[str, str]:
    return {NAME: "sun-sglang", COMPONENT: component, CLUSTER: options.name, **extra}


@dataclass(frozen=True)
class ServerSet:
    role: Role
    name: str  # the StatefulSet's and its headless Service's
    replicas: int
    labels: dict[str, str]  # its pods'; labels[SET] selects them
    args: list[str]  # of `python -m sun_sglang.launch`
    env: dict[str, str]  # the cluster file's prefill_env / decode_env
    port: int
    domain: str  # NAMESPACE.svc.CLUSTER_DOMAIN
    device: Device
    bootstrap_port: int | None = None
    control_ports: PortRange | None = None  # the pods' ephemeral range: where SGLang's ZMQ binds

    def host(self, ordinal: int) -> str:
        return f"{self.name}-{ordinal}.{self.name}.{self.domain}"

    def urls(self) -> list[str]:
        return [f"http://{self.host(i)}:{self.port}" for i in range(self.replicas)]

    def prefill_workers(self, cache_tokens: int | None) -> list[PrefillWorker]:
        assert self.bootstrap_port is not None
        return [PrefillWorker(url, self.bootstrap_port, cache_tokens) for url in self.urls()]


@dataclass(frozen=True)
class K8sPlan:
    sets: list[ServerSet]
    gateway: GatewayConfig  # without secrets: those go in the Secret, merged by `router --secrets`


def plan(config: ClusterConfig, options: K8sOptions) -> K8sPlan:
    """Paths are used as given (they are paths in the model volume); each prefill server checks its
    module against the base when its pod starts (the launcher's role), not here."""
    for what, env in (("prefill_env", config.prefill_env), ("decode_env", config.decode_env)):
        if taken := sorted(set(env) & set(RESERVED_ENV)):
            raise ValueError(f"{what}: {taken} are set by the manifests (from the pod and the Secret)")
    if config.mode == "multi_lora":
        raise ValueError(
            "mode multi_lora is a benchmark baseline (one host): launch k8s writes sun or conventional"
        )
    device: Device = "cpu" if config.device == "cpu" else "cuda"
    if options.rdma_device and config.transfer_backend == "mooncake_tcp":
        raise ValueError("--rdma-device: needs transfer_backend mooncake or nixl (mooncake_tcp is TCP)")
    base = options.model_path("base", config.base)
    port, bootstrap = server_ports(config)
    domain = f"{options.namespace}.svc.{options.cluster_domain}"
    sets: list[ServerSet] = []

    def server_set(
        role: Role, name: str, replicas: int, own: list[str], more: list[str], **extra: str
    ) -> ServerSet:
        """own: the role's flags; more: SGLang's (LoRA), passed through like the file's args."""
        serve = [
            *("--host", "0.0.0.0", "--advertise", "$(POD_IP)", "--port", str(port)),
            *("--transfer-backend", config.transfer_backend, "--device", device),
            *("--dtype", config.dtype, "--kv-cache-dtype", config.kv_cache_dtype),
        ]
        if kv_tokens := config.kv_tokens(device):
            serve += ["--max-total-tokens", str(kv_tokens)]
        if config.transfer_ports:
            serve += ["--transfer-ports", f"{config.transfer_ports.low}-{config.transfer_ports.high}"]
        # One token: the key may start with '-', which a separate argument would turn into a flag.
        sglang = ["--api-key=$(SUN_CLUSTER_KEY)"]
        if device == "cuda" and options.gpus > 1:
            sglang += ["--tp-size", str(options.gpus)]
        if options.rdma_device:
            sglang += ["--disaggregation-ib-device", options.rdma_device]
        passed = config.prefill_args if role == "prefill" else config.decode_args
        spec = ServerSet(
            role=role,
            name=name,
            replicas=replicas,
            labels=labels(options, role, **{SET: name}, **extra),
            args=[role, *own, *serve, *sglang, *more, *passed],
            env=dict(config.prefill_env if role == "prefill" else config.decode_env),
            port=port,
            domain=domain,
            device=device,
            bootstrap_port=bootstrap if role == "prefill" else None,
            control_ports=config.control_ports,
        )
        sets.append(spec)
        return spec

    def prefill(task: str, model: str) -> list[str]:
        flags = ["--task", task, "--model-path", model, "--decode-model-path", base]
        return [*flags, "--bootstrap-port", str(bootstrap)]

    conventional = config.mode == "conventional"
    shared = None
    if not conventional:
        shared = server_set("decode", "decode", config.decode.replicas, ["--model-path", base], [])
    routes: dict[str, TaskRoute] = {}
    pools: dict[str, list[PrefillWorker]] = {}
    for pool_name, pool in config.prefill_pools.items():
        adapters = {
            task: options.model_path(f"task {task!r} adapter", t.adapter)
            for task, t in config.tasks.items()
            if t.adapter and t.pool == pool_name
        }
        lora = LoraServing(
            adapters, pool.max_lora_rank, pool.target_modules, pool.max_loras_per_batch, pool.max_loaded_loras
        )
        name = f"prefill-pool-{dns_label('prefill pool', pool_name)}"
        pool_label = {POOL: label_value("pool", pool_name)}
        spec = server_set(
            "prefill", name, pool.replicas, prefill(pool_name, base), lora.argv(device), **pool_label
        )
        pools[pool_name] = spec.prefill_workers(config.kv_tokens(device))
        routes |= {task: TaskRoute(model_path=base, pool=pool_name, adapter=task) for task in adapters}
    for task, task_config in config.tasks.items():
        if task_config.model_path is None:
            continue  # an adapter, above
        ckpt = options.model_path(f"task {task!r}", task_config.model_path)
        task_label = {TASK: label_value("task", task)}
        name = dns_label("task", task)
        spec = server_set(
            "prefill", f"prefill-{name}", task_config.replicas, prefill(task, ckpt), [], **task_label
        )
        own = None
        if conventional:
            decode = server_set(
                "decode", f"decode-{name}", config.decode.replicas, ["--model-path", ckpt], [], **task_label
            )
            own = decode.urls()
        routes[task] = TaskRoute(
            model_path=ckpt, prefill=spec.prefill_workers(config.kv_tokens(device)), decode=own
        )
    names = [s.name for s in sets]
    if clash := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"server sets {clash}: two tasks or pools give the same Kubernetes name")
    # A pod's name (<set>-<i>) is its hostname, and <set>-<hash> a label value: 63 characters each.
    if long := [n for n in names if len(n) > _MAX_SET_NAME]:
        raise ValueError(f"server sets {long}: names longer than {_MAX_SET_NAME} characters")
    allowed = config.router.admin_allowed_hosts
    if allowed is None:  # the pods' own names, and room for those that scaling adds
        allowed = [s.host(i) for s in sets for i in range(s.replicas + options.admin_headroom)]
    gateway = GatewayConfig(
        tasks=routes,
        decode=shared.urls() if shared is not None else [],
        prefill_pools=pools,
        host="0.0.0.0",
        port=config.router.port,
        timeouts=config.router.timeouts,
        health_interval_s=config.router.health_interval_s,
        health_timeout_s=config.router.health_timeout_s,
        prefill_policy=config.router.prefill_policy,
        prefill_balance=config.router.prefill_balance,
        admin_allowed_hosts=allowed,
    )
    return K8sPlan(sets, gateway)
