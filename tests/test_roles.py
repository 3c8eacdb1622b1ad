"""Server command lines: SUN's pinned settings on every server, CPU work-arounds on CPU."""

from pathlib import Path

import msgspec
import pytest

from sun_sglang.launch import config as cluster_config
from sun_sglang.launch.plan import plan
from sun_sglang.launch.roles import ServeOptions, ServerSpec


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_prefill_and_decode_argv_pin_dtype_kv_dtype_and_backend() -> None:
    opts = ServeOptions(device="cpu", transfer_backend="nixl", extra_args=["--log-level", "warning"])
    prefill = ServerSpec(
        "prefill", "p", "/ckpt", 31001, "float32", opts, bootstrap_port=31501, served_model_name="math"
    )
    decode = ServerSpec("decode", "d", "/base", 31000, "float32", opts)
    for spec in (prefill, decode):
        argv = spec.argv()
        assert _flag(argv, "--dtype") == "float32"
        assert _flag(argv, "--kv-cache-dtype") == "auto"
        assert _flag(argv, "--host") == "127.0.0.1"
        assert _flag(argv, "--disaggregation-transfer-backend") == "nixl"
        assert _flag(argv, "--disaggregation-mode") == spec.role
        assert argv[-2:] == ["--log-level", "warning"]  # pass-through last
        env = spec.env({})
        assert env["SGLANG_HOST_IP"] == "127.0.0.1" and env["SGLANG_USE_CPU_ENGINE"] == "1"
        assert _flag(argv, "--grammar-backend") == "xgrammar"  # one grammar on both legs
    assert _flag(prefill.argv(), "--disaggregation-bootstrap-port") == "31501"
    assert _flag(decode.argv(), "--disaggregation-decode-retraction-backup") == "cpu_tensor"
    assert "--disaggregation-bootstrap-port" not in decode.argv()


def test_gpu_argv_has_no_cpu_workarounds() -> None:
    spec = ServerSpec("decode", "d", "/base", 31000, "bfloat16", ServeOptions(device="cuda"))
    assert "torch_native" not in spec.argv()
    assert "SGLANG_USE_CPU_ENGINE" not in spec.env({})


def test_mooncake_tcp_forces_tcp() -> None:
    spec = ServerSpec("decode", "d", "/base", 31000, "float32", ServeOptions())
    assert spec.env({})["MC_FORCE_TCP"] == "1"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def test_cluster_plan_assigns_distinct_ports_and_one_dtype(
    tmp_path: Path, tiny_base: Path, tiny_task: Path
) -> None:
    cfg = cluster_config.load(
        _write(
            tmp_path,
            f"""
base: {tiny_base}
decode: {{replicas: 2}}
tasks:
  math: {{model_path: {tiny_task}, replicas: 2}}
  chat: {{model_path: {tiny_base}}}
router: {{port: 8123}}
""",
        )
    )
    cluster = plan(cfg, "cpu")
    ports = [s.port for s in cluster.servers]
    boots = [s.bootstrap_port for s in cluster.servers if s.role == "prefill"]
    assert len(set(ports)) == len(ports) == 5 and len(set(boots)) == 3
    assert not set(ports) & set(boots)
    assert {s.dtype for s in cluster.servers} == {"float32"}
    assert len(cluster.gateway.decode) == 2 and len(cluster.gateway.tasks["math"].prefill) == 2
    assert cluster.gateway.port == 8123
    assert all(s.argv()[0] != "taskset" for s in cluster.servers) and cluster.gateway_cpus is None


def test_cluster_plan_pins_each_role_to_its_cpus(tmp_path: Path, tiny_base: Path, tiny_task: Path) -> None:
    text = f"base: {tiny_base}\ntasks: {{math: {{model_path: {tiny_task}}}}}\n"
    text += "cpus: {prefill: '0', decode: '1-2'}\n"
    cluster = plan(cluster_config.load(_write(tmp_path, text)), "cpu")
    argv = {s.role: s.argv() for s in cluster.servers}
    assert argv["prefill"][:3] == ["taskset", "-c", "0"] and argv["decode"][:3] == ["taskset", "-c", "1-2"]
    assert argv["decode"][4:6] == ["-m", "sglang.launch_server"] and cluster.gateway_cpus is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("base: x\ntasks: {}\n", "at least one task"),
        ("base: x\ntasks: {'a:b': {model_path: x}}\n", "task name 'a:b'"),
        ("base: x\ntasks: {a: {model_path: x}}\nbogus: 1\n", "unknown field `bogus`"),
        ("base: x\ntasks: {a: {model_path: x, replicas: 0}}\n", "replicas must be at least 1"),
        (
            "base: x\ntasks: {a: {model_path: x, reasoning_parser: qwen3},"
            " b: {model_path: x, reasoning_parser: kimi}}\n",
            "one per cluster",
        ),
    ],
)
def test_bad_cluster_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises((ValueError, msgspec.ValidationError), match=message):
        cluster_config.load(_write(tmp_path, body))


def test_cluster_with_mismatched_task_is_refused_before_start(
    tmp_path: Path, tiny_base: Path, smollm2: Path
) -> None:
    cfg = cluster_config.load(
        _write(
            tmp_path,
            f"""
base: {tiny_base}
tasks: {{bad: {{model_path: {smollm2}}}}}
""",
        )
    )
    from sun_sglang.compat import IncompatibleCheckpoint

    with pytest.raises(IncompatibleCheckpoint, match=r"task 'bad'.*num_hidden_layers: 30 \(prefill\) vs 2"):
        plan(cfg, "cpu")


def test_conventional_plan_gives_each_task_its_own_decode_servers(
    tmp_path: Path, tiny_base: Path, tiny_task: Path
) -> None:
    cfg = cluster_config.load(
        _write(
            tmp_path,
            f"""
base: {tiny_base}
mode: conventional
decode: {{replicas: 2}}
tasks:
  math: {{model_path: {tiny_task}}}
  chat: {{model_path: {tiny_base}}}
""",
        )
    )
    cluster = plan(cfg, "cpu")
    decode = [s for s in cluster.servers if s.role == "decode"]
    assert cfg.server_count == len(cluster.servers) == 6
    assert sorted(s.name for s in decode) == [
        "decode-chat-0",
        "decode-chat-1",
        "decode-math-0",
        "decode-math-1",
    ]
    assert {s.model_path for s in decode if "math" in s.name} == {str(tiny_task)}  # the task model decodes
    assert cluster.gateway.decode == []
    assert cluster.gateway.tasks["math"].decode == [s.url for s in decode if "math" in s.name]


def test_multi_lora_plan_gives_the_decode_servers_every_adapter(
    tmp_path: Path, tiny_base: Path, tiny_adapters: list[Path]
) -> None:
    a, b = tiny_adapters
    text = f"""
base: {tiny_base}
mode: multi_lora
decode: {{replicas: 2, max_loras_per_batch: 2}}
prefill_pools: {{one: {{max_lora_rank: 8}}, two: {{max_lora_rank: 16}}}}
tasks:
  math: {{adapter: {a}, pool: one}}
  code: {{adapter: {b}, pool: two}}
"""
    cluster = plan(cluster_config.load(_write(tmp_path, text)), "cpu")
    decode = [s for s in cluster.servers if s.role == "decode"]
    assert len(decode) == 2 and cluster.gateway.decode_adapters
    for spec in decode:
        argv = spec.argv()
        assert "--enable-lora" in argv and _flag(argv, "--max-loras-per-batch") == "2"
        assert _flag(argv, "--max-lora-rank") == "16"
        paths = argv[argv.index("--lora-paths") + 1 : argv.index("--lora-paths") + 3]
        assert paths == [f"math={a}", f"code={b}"]
    sun = plan(cluster_config.load(_write(tmp_path, text.replace("multi_lora", "sun"))), "cpu")
    assert not sun.gateway.decode_adapters
    assert all("--enable-lora" not in s.argv() for s in sun.servers if s.role == "decode")


def test_multi_lora_takes_adapter_tasks_only(
    tmp_path: Path, tiny_base: Path, tiny_adapters: list[Path]
) -> None:
    pools = "prefill_pools: {one: {}}\n"
    full = f"base: {tiny_base}\nmode: multi_lora\ntasks: {{a: {{model_path: {tiny_base}}}}}\n"
    with pytest.raises(ValueError, match="multi_lora serves adapter tasks only"):
        cluster_config.load(_write(tmp_path, full))
    task = f"tasks: {{a: {{adapter: {tiny_adapters[0]}, pool: one}}}}\n"
    conv = f"base: {tiny_base}\nmode: conventional\n{pools}{task}"
    with pytest.raises(ValueError, match="need mode sun or multi_lora"):
        cluster_config.load(_write(tmp_path, conv))


def test_a_cluster_whose_ports_are_taken_is_refused_before_anything_starts(
    tmp_path: Path, tiny_base: Path
) -> None:
    """Else another cluster on those ports answers the new servers' health checks."""
    import socket

    from sun_sglang.launch.cluster import Cluster
    from sun_sglang.launch.process import ServerFailed

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        text = f"base: {tiny_base}\ntasks: {{math: {{model_path: {tiny_base}}}}}\nfirst_port: {port}\n"
        cluster = Cluster(plan(cluster_config.load(_write(tmp_path, text)), "cpu"), tmp_path / "logs", 10)
        with pytest.raises(ServerFailed, match=f"127.0.0.1:{port} \\(decode-0\\)"):
            cluster.start()
    assert cluster.procs == []


def test_parsers_reach_the_gateway_and_the_servers(tmp_path: Path, tiny_base: Path, tiny_task: Path) -> None:
    text = f"""
base: {tiny_base}
tasks:
  tools: {{model_path: {tiny_task}, tool_call_parser: qwen25}}
  think: {{model_path: {tiny_task}, reasoning_parser: deepseek-r1}}
  plain: {{model_path: {tiny_base}}}
"""
    cluster = plan(cluster_config.load(_write(tmp_path, text)), "cpu")
    routes = cluster.gateway.tasks
    assert routes["tools"].tool_call_parser == "qwen25" and routes["tools"].reasoning_parser is None
    assert routes["think"].reasoning_parser == "deepseek-r1" and routes["plain"].tool_call_parser is None
    # every server, decode and every prefill alike: the grammar waits for the thinking on both legs
    assert {_flag(s.argv(), "--reasoning-parser") for s in cluster.servers} == {"deepseek-r1"}


@pytest.mark.parametrize("field", ["tool_call_parser", "reasoning_parser"])
def test_unknown_parsers_are_refused_before_anything_starts(
    tmp_path: Path, tiny_base: Path, field: str
) -> None:
    text = f"base: {tiny_base}\ntasks: {{a: {{model_path: {tiny_base}, {field}: nonsense}}}}\n"
    with pytest.raises(ValueError, match=f"unknown {field} 'nonsense'"):
        plan(cluster_config.load(_write(tmp_path, text)), "cpu")
