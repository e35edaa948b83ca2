"""The Ray executor's plain parts: task options from the config, which environment travels to a
node, paths moved back from a node's copy, and a clear error without Ray or outside the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundry.errors import ConfigError
from foundry.orchestration.config import StepResources
from foundry.orchestration.ray_executor import (
    _relative,
    _relocated,
    config_overrides,
    import_ray,
    step_options,
)


def test_step_options_carry_the_resources_and_retry_only_lost_workers():
    options = step_options(
        StepResources(num_cpus=4, num_gpus=1, memory_gb=1.5, resources={"a100": 1}), 3
    )
    assert options == {
        "num_cpus": 4, "num_gpus": 1, "max_retries": 3, "retry_exceptions": False,
        "memory": int(1.5 * 1024**3), "resources": {"a100": 1},
    }  # fmt: skip
    assert "memory" not in step_options(StepResources(), 0)


def test_only_config_overrides_travel_to_a_node_never_secrets():
    environ = {
        "FOUNDRY_TRAINING__SEED": "7",
        "FOUNDRY_ORCHESTRATION__RAY__ADDRESS": "auto",
        "FOUNDRY_SERVE_API_KEY": "secret-key",
        "ANTHROPIC_API_KEY": "sk-secret",
        "HOME": "/root",
    }
    assert config_overrides(environ) == {
        "FOUNDRY_TRAINING__SEED": "7",
        "FOUNDRY_ORCHESTRATION__RAY__ADDRESS": "auto",
    }


def test_paths_in_a_result_move_from_the_nodes_copy_to_the_project():
    value = {"sft": {"path": "/scratch/k/.foundry/adapters/a/sft", "steps": 4},
             "paths": ["/scratch/k/x", "/elsewhere/y"], "pair": ("/scratch/k", 1)}  # fmt: skip
    assert _relocated(value, "/scratch/k", "/project") == {
        "sft": {"path": "/project/.foundry/adapters/a/sft", "steps": 4},
        "paths": ["/project/x", "/elsewhere/y"],
        "pair": ("/project", 1),
    }


def test_a_path_outside_the_project_is_refused_with_the_key_to_fix(tmp_path: Path):
    assert _relative(tmp_path, tmp_path / "data" / "x") == "data/x"
    with pytest.raises(ConfigError, match=r"outside the project folder .* \(check `paths:`"):
        _relative(tmp_path / "project", tmp_path / "elsewhere")


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError, match=r"persona-foundry\[ray\].*executor: local"):
        import_ray()


def test_an_address_nobody_answers_at_fails_fast_naming_the_key():
    import socket

    from foundry.orchestration.ray_executor import _check_reachable

    with socket.socket() as probe:  # a port just freed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"no Ray cluster answers at ray://127.0.0.1:{port} "):
        _check_reachable(f"ray://127.0.0.1:{port}")
    _check_reachable("auto")  # resolved by Ray itself: not checked here
