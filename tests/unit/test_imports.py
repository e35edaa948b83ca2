"""Every module imports, and the shipped configuration loads."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["foundry", "tasks", "flows", "registry", "deploy"]


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        path = REPO_ROOT / package
        names += [m.name for m in pkgutil.walk_packages([str(path)], prefix=f"{package}.")]
    return names


@pytest.mark.parametrize("module", _modules())
def test_module_imports(module):
    assert importlib.import_module(module) is not None


def test_importing_foundry_has_no_side_effects(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    subprocess.run(
        [sys.executable, "-c", "import foundry.config, foundry.data.schemas, foundry.cli.main"],
        check=True,
        cwd=tmp_path,
    )
    assert list(tmp_path.iterdir()) == []


def test_shipped_foundry_yaml_loads_and_points_at_existing_examples():
    from foundry.config import load_config

    config = load_config(REPO_ROOT / "foundry.yaml")
    assert config.root == REPO_ROOT
    assert (config.examples_dir / "personas").is_dir()
    assert (config.examples_dir / "topics.yaml").is_file()
