"""The `foundry` CLI through Typer's runner, on temporary projects."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.config import load_config
from foundry.data.versions import read_data_version
from tests.conftest import FAULTLINE_FIXTURE, make_project

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps table cells at the terminal width; a wide console keeps messages on one line."""
    import foundry.cli.common

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)


def invoke(root: Path, *args: str):
    return runner.invoke(app, [*args, "--config", str(root / "foundry.yaml")])


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    return make_project(tmp_path / "repo", git=True)


@pytest.fixture
def initialised(fresh: Path) -> Path:
    result = invoke(fresh, "init")
    assert result.exit_code == 0, result.output
    return fresh


def test_init_seeds_and_prints_the_data_version_last(fresh):
    result = invoke(fresh, "init")

    assert result.exit_code == 0, result.output
    assert "seeded" in result.output
    from foundry.config import load_config

    version = read_data_version(load_config(fresh / "foundry.yaml"))
    assert result.output.strip().splitlines()[-1] == f"data version: {version.data_rev}"


def test_data_version_prints_the_version_on_its_last_line(initialised):
    result = invoke(initialised, "data", "version")

    assert result.exit_code == 0, result.output
    from foundry.config import load_config

    version = read_data_version(load_config(initialised / "foundry.yaml"))
    assert result.output.strip().splitlines()[-1] == version.data_rev


def test_validate_passes_on_the_sample(initialised):
    result = invoke(initialised, "validate")

    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output
    assert re.search(r"\b\d+ conflict\(s\) \(test data\): boundary \d+, causal \d+", result.output)
    for slug in ("marguerite-vale", "tobias-renn", "priya-castellanos", "jonah-okafor"):
        assert slug in result.output


def test_validate_one_persona(initialised):
    result = invoke(initialised, "validate", "--persona", "tobias-renn")

    assert result.exit_code == 0, result.output
    assert "tobias-renn" in result.output and "jonah-okafor" not in result.output


def test_validate_unknown_persona_exits_1_with_a_suggestion(initialised):
    result = invoke(initialised, "validate", "--persona", "tobias-ren")

    assert result.exit_code == 1
    assert "did you mean `tobias-renn`" in result.output


def test_validate_exits_1_and_names_the_bad_file_and_line(initialised):
    corpus = initialised / "data/personas/jonah-okafor/corpus/extra.jsonl"
    corpus.write_text('{"id": "x1", "text": "fine"}\n{"id": "x2" "text": "broken"}\n')

    result = runner.invoke(
        app, ["validate", "--config", str(initialised / "foundry.yaml")], terminal_width=400
    )

    assert result.exit_code == 1
    assert "extra.jsonl, line 2: not valid JSON" in result.output
    assert "1 error(s)" in result.output


def test_validate_warns_without_failing_on_missing_reasoning_method(initialised):
    contract = initialised / "data/personas/jonah-okafor/contract.yaml"
    import yaml

    data = yaml.safe_load(contract.read_text())
    data.pop("reasoning_method")
    contract.write_text(yaml.safe_dump(data))

    result = runner.invoke(
        app, ["validate", "--config", str(initialised / "foundry.yaml")], terminal_width=400
    )

    assert result.exit_code == 0, result.output
    assert "reasoning_method: missing" in result.output
    assert "1 warning(s)" in result.output


def test_personas_list_plain_prints_one_slug_a_line(initialised):
    result = invoke(initialised, "personas", "list", "--plain")

    assert result.exit_code == 0
    assert result.output.split() == [
        "jonah-okafor",
        "marguerite-vale",
        "priya-castellanos",
        "tobias-renn",
    ]


def test_personas_list_shows_reasoning_methods(initialised):
    result = runner.invoke(
        app,
        ["personas", "list", "--config", str(initialised / "foundry.yaml")],
        terminal_width=200,
    )

    assert result.exit_code == 0
    assert "Tobias Renn" in result.output and "11" in result.output


def test_import_faultline_then_validate(initialised):
    result = runner.invoke(
        app,
        [
            "import",
            "faultline",
            str(FAULTLINE_FIXTURE),
            "--config",
            str(initialised / "foundry.yaml"),
        ],
        terminal_width=300,
    )

    assert result.exit_code == 0, result.output
    imported = sorted(
        p.parent.name
        for p in (initialised / "data/personas").glob("*/contract.yaml")
        if "source: faultline" in p.read_text()
    )
    assert imported and all(slug in result.output for slug in imported)
    assert invoke(initialised, "validate").exit_code == 0


def test_import_faultline_unknown_deck_exits_1(initialised):
    result = invoke(initialised, "import", "faultline", str(FAULTLINE_FIXTURE), "--deck", "nope")

    assert result.exit_code == 1
    assert "no deck 'nope'" in result.output


def test_config_show_reflects_environment_overrides(initialised, monkeypatch):
    monkeypatch.setenv("FOUNDRY_PERSONAS__TEST_FRACTION", "0.3")

    result = invoke(initialised, "config", "show")

    assert result.exit_code == 0
    assert "test_fraction: 0.3  # Share of each persona" in result.output


def test_bad_config_exits_1_naming_key_and_file(initialised):
    (initialised / "foundry.yaml").write_text("personas:\n  test_fractoin: 0.2\n")

    result = invoke(initialised, "validate")

    assert result.exit_code == 1
    assert "foundry.yaml" in result.output and "test_fractoin" in result.output
    assert "did you mean `test_fraction`" in result.output


def test_validate_without_personas_says_how_to_start(fresh):
    shutil.rmtree(fresh / "data", ignore_errors=True)

    result = invoke(fresh, "validate")

    assert result.exit_code == 1
    assert "foundry init" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["init"],
        ["validate"],
        ["run"],
        ["import", "faultline"],
        ["data", "version"],
        ["personas", "list"],
        ["personas", "show"],
        ["config", "show"],
        ["ui"],
        ["schedule", "list"],
        ["schedule", "deploy"],
        ["schedule", "serve"],
    ],
)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)

    assert result.exit_code == 0
    assert "Example: foundry" in result.output or "foundry config show" in result.output


# `foundry init --empty`: a project without the sample, for users who bring their own personas.


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
