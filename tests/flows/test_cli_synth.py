"""`foundry synth`, `foundry pairs` and `foundry prompts export` through Typer's runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundry.cli.main import app
from tests.conftest import SAMPLE_DIR, make_project
from tests.fakes.anthropic_server import FakeAnthropicServer

pytestmark = pytest.mark.slow
runner = CliRunner()
SMALL_BASE = """
base_model: {tiny: {pretrain_steps: 10, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
"""


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    import foundry.cli.common

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)


@pytest.fixture
def root(tmp_path: Path, monkeypatch) -> Path:
    for name in ("ANTHROPIC_API_KEY", "FOUNDRY_ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    project = make_project(tmp_path / "repo", config_text=SMALL_BASE)
    shutil.copytree(SAMPLE_DIR, project / "data")
    return project


def invoke(root: Path, *args: str):
    return runner.invoke(app, [*args, "--config", str(root / "foundry.yaml")])


def test_synth_then_pairs_offline_print_tables_and_write_files(root, tmp_path):
    result = invoke(
        root, "synth", "--persona", "tobias-renn", "--persona", "jonah-okafor", "--n", "6"
    )
    assert result.exit_code == 0, result.output
    assert "synthesis: offline" in result.output
    row = next(line for line in result.output.splitlines() if "tobias-renn" in line)
    assert row.split("│")[2].strip() == "6"  # planned
    assert "spent $0.0000" in result.output

    out = tmp_path / "together.jsonl"
    result = invoke(root, "pairs", "--export", "together", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "negatives by local" in result.output and "cross_persona" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {"input", "preferred_output", "non_preferred_output"} == set(rows[0])
    assert f"exported {len(rows)} pair(s) in together format" in result.output


def test_synth_with_anthropic_and_no_key_exits_1_suggesting_offline(root):
    result = invoke(root, "synth", "--provider", "anthropic", "--n", "2")
    assert result.exit_code == 1
    assert "ANTHROPIC_API_KEY is not set" in result.output and "--provider offline" in result.output
    assert not (root / "data" / "synthetic").exists()


def test_synth_with_a_zero_budget_exits_1(root):
    result = invoke(root, "synth", "--budget", "0", "--n", "2")
    assert result.exit_code == 1 and "budget must be more than 0" in result.output


def test_synth_with_a_key_reaches_claude_and_reports_cost(root, monkeypatch):
    with FakeAnthropicServer() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", server.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        result = invoke(root, "synth", "--persona", "priya-castellanos", "--n", "3")
    assert result.exit_code == 0, result.output
    assert "synthesis: anthropic" in result.output and server.requests == 3
    assert server.api_key not in result.output
    spent = float(result.output.split("spent $")[1].split()[0])
    assert spent > 0


def test_pairs_export_needs_out(root):
    result = invoke(root, "pairs", "--export", "trl")
    assert result.exit_code == 2 and "--out" in result.output


def test_prompts_export_writes_one_file_per_persona(root, tmp_path):
    result = invoke(root, "prompts", "export", "--out", str(tmp_path / "prompts"))
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "prompts").iterdir())
    assert written == sorted(f"{p.name}.md" for p in (SAMPLE_DIR / "personas").iterdir())
    assert "Principles you hold yourself to" in (tmp_path / "prompts" / written[0]).read_text()


def test_synth_exits_1_when_requests_fail_and_keeps_what_was_made(root, monkeypatch):
    (root / "foundry.yaml").write_text(
        SMALL_BASE + "synthesis: {max_retries: 1, backoff_s: 0.01, concurrency: 1}\n"
    )
    with FakeAnthropicServer() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", server.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        server.fail_next(500, count=2)  # the first request fails twice: no retries left
        result = invoke(root, "synth", "--persona", "jonah-okafor", "--n", "3")
    assert result.exit_code == 1
    assert "1 request(s) failed" in result.output and "500" in result.output
    lines = (root / "data/synthetic/jonah-okafor/generations.jsonl").read_text().splitlines()
    assert len(lines) == 2
