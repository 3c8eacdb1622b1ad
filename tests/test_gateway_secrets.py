"""`python -m router --secrets FILE`: api_keys, admin_token, server_api_key from a file of their own."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from router.__main__ import main as router_main
from router.config import GatewayConfig, GatewaySecrets, PrefillWorker, TaskRoute, load_secrets, with_secrets

CONFIG = GatewayConfig(
    tasks={"math": TaskRoute("/m", prefill=[PrefillWorker("http://p:1", 2)])},
    decode=["http://d:1"],
    api_keys=["from-config"],
    admin_token="config-token",
)


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_secrets_override_the_config(tmp_path: Path) -> None:
    secrets = load_secrets(
        _write(
            tmp_path / "s.json",
            {"api_keys": ["k1", "k2"], "admin_token": "t", "server_api_key": "cluster-key-c"},
        )
    )
    merged = with_secrets(CONFIG, secrets)
    assert (merged.api_keys, merged.admin_token, merged.server_api_key) == (
        ["k1", "k2"],
        "t",
        "cluster-key-c",
    )
    assert merged.tasks == CONFIG.tasks and merged.decode == CONFIG.decode


def test_fields_left_out_keep_the_configs_and_null_clears(tmp_path: Path) -> None:
    merged = with_secrets(CONFIG, load_secrets(_write(tmp_path / "s.json", {"admin_token": None})))
    assert (merged.api_keys, merged.admin_token, merged.server_api_key) == (["from-config"], None, None)
    assert with_secrets(CONFIG, GatewaySecrets()) == CONFIG


@pytest.mark.parametrize("data", [{"api_key": ["typo"]}, {"api_keys": "not-a-list"}, [1]])
def test_bad_secrets_files_are_refused(tmp_path: Path, data: object) -> None:
    with pytest.raises(ValueError, match="s.json"):
        load_secrets(_write(tmp_path / "s.json", data))


def test_the_command_line_refuses_a_bad_secrets_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.json"
    config.write_bytes(msgspec.json.encode(CONFIG))
    secrets = _write(tmp_path / "s.json", {"cluster_key": "x"})
    with pytest.raises(SystemExit) as exit_info:
        router_main(["--config", str(config), "--secrets", str(secrets)])
    assert exit_info.value.code == 2
    assert "cluster_key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        router_main(["--config", str(config), "--secrets", str(tmp_path / "missing.json")])
