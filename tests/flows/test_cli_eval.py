"""`foundry eval` through Typer's runner on a small tiny base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.config import load_config
from foundry.evaluation.schema import EvalReport
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow
runner = CliRunner()
SMALL = """
base_model: {tiny: {pretrain_steps: 10, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
evaluation: {prompts_per_persona: 2, max_conflicts: 2, heldout_items: 3, max_new_tokens: 12,
  embeddings: tfidf}
"""


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    import foundry.cli.common

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    from foundry.training.base_model import ensure_base

    project = make_project(tmp_path_factory.mktemp("cli-eval") / "repo", config_text=SMALL)
    shutil.copytree(SAMPLE_DIR, project / "data")
    ensure_base(load_config(project / "foundry.yaml"))
    return project


def invoke(root: Path, *args: str):
    return runner.invoke(app, [*args, "--config", str(root / "foundry.yaml")])


def test_eval_prints_the_summary_and_writes_json_and_report(root, tmp_path):
    out = tmp_path / "metrics.json"
    result = invoke(root, "eval", "--variant", "base", "--variant", "prompt", "--json", str(out))
    assert result.exit_code == 0, result.output
    report = EvalReport.model_validate(json.loads(out.read_text()))
    assert report.variants == ["base", "prompt"]
    lines = result.output.splitlines()
    header = [c.strip() for c in next(x for x in lines if x.startswith("┃ variant")).split("┃")]
    row = [c.strip() for c in next(x for x in lines if x.startswith("│ prompt")).split("│")]
    style = report.metrics["prompt"].attribution_style
    low, high = style.accuracy_interval
    assert row[header.index("style attribution")] == f"{style.accuracy:.2f} [{low:.2f}, {high:.2f}]"
    assert "prompt: the prompt-only baseline" in result.output  # the verdicts follow the table
    assert (root / ".foundry" / "eval" / "report.md").is_file()


def test_eval_of_an_untrained_variant_exits_1_saying_how_to_train(root):
    result = invoke(root, "eval", "--variant", "dpo", "--persona", "tobias-renn")
    assert result.exit_code == 1
    assert "no dpo adapter for tobias-renn" in result.output and "foundry train" in result.output
