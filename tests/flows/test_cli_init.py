"""`foundry init --empty`: a project without the sample, for users who bring their own personas."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.config import load_config
from foundry.data.versions import read_data_version
from tests.conftest import make_project

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps long lines at the terminal width; a wide console keeps messages on one line."""
    import foundry.cli.common

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)


def invoke(root: Path, *args: str):
    return runner.invoke(app, [*args, "--config", str(root / "foundry.yaml")])


def test_init_empty_starts_with_no_personas_or_topics_and_versions_it(tmp_path):
    root = make_project(tmp_path / "repo", git=True)

    result = invoke(root, "init", "--empty")

    assert result.exit_code == 0, result.output
    assert "started an empty" in result.output and "foundry import faultline DIR" in result.output
    data = root / "data"
    assert (data / "personas").is_dir() and not any((data / "personas").iterdir())
    assert not (data / "topics.yaml").exists() and not (data / "conflicts.yaml").exists()
    version = read_data_version(load_config(root / "foundry.yaml"))
    assert version.personas == {}
    assert result.output.strip().splitlines()[-1] == f"data version: {version.data_rev}"
    check = invoke(root, "validate")
    assert check.exit_code == 1 and "no personas in" in check.output


def test_init_empty_keeps_personas_already_there(tmp_path):
    root = make_project(tmp_path / "repo", git=True)
    assert invoke(root, "init").exit_code == 0
    before = sorted(p.name for p in (root / "data" / "personas").iterdir())

    result = invoke(root, "init", "--empty")

    assert result.exit_code == 0, result.output
    assert "kept the personas already in" in result.output
    assert sorted(p.name for p in (root / "data" / "personas").iterdir()) == before != []


def test_init_help_explains_empty():
    result = runner.invoke(app, ["init", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--empty" in result.output and "bring your own" in result.output
