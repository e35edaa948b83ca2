"""A derived persona through the `retrain` flow (issue 22): after its sources are trained, the
flow merges it, evaluates it with its landing record and registers it with a lineage tag that
names its sources' registered versions.

One project, built on as a user would: a first run trains two sample personas; `foundry merge`
blends them; a second run (the sources cached) merges, evaluates and registers the blend.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundry.config import load_config
from tests.conftest import TINY_TRAINING, make_project
from tests.flows.conftest import settled_task_runs

pytestmark = pytest.mark.slow

SOURCES = ["jonah-okafor", "marguerite-vale"]  # the sample's first conflicts are theirs
BLEND = "jonah-marguerite"
SMALL = (
    TINY_TRAINING
    + """
synthesis: {turns_per_persona: 6}
registry:
  promotion: {min_content_recall: 0.0, min_style_recall: 0.0, max_fluency_nll: 50,
    max_copy_rate: 1.0, compare: []}
orchestration: {workers: 1}
"""
)


@pytest.fixture(scope="module")
def project(prefect_harness, tmp_path_factory):
    from flows.retrain import retrain
    from foundry.cli.main import app

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    root = make_project(tmp_path_factory.mktemp("derived") / "repo", git=True, config_text=SMALL)
    result = CliRunner().invoke(app, ["init", "--config", str(root / "foundry.yaml")])
    assert result.exit_code == 0, result.output
    config = load_config(root / "foundry.yaml")
    first = retrain(config_path=str(config.source), personas=SOURCES, return_state=True)
    assert first.is_completed(), first.message
    yield config
    monkeypatch.undo()


@pytest.fixture(scope="module")
def merged(project):
    from foundry.cli.main import app

    args = ["merge", "--from", "jonah-okafor:0.7", "--from", "marguerite-vale:0.3",
            "--method", "ties", "--density", "0.5", "--as", BLEND]  # fmt: skip
    return CliRunner().invoke(app, [*args, "--config", str(project.source)], terminal_width=200)


@pytest.fixture(scope="module")
def second(project, merged):
    from flows.retrain import retrain

    return retrain(config_path=str(project.source), personas=[*SOURCES, BLEND], return_state=True)


def test_foundry_merge_writes_the_derived_contract_and_both_adapters(project, merged):
    from foundry.data.personas import require_contract

    assert merged.exit_code == 0, merged.output
    contract = require_contract(project.persona_dir(BLEND))
    assert contract.is_derived and contract.trainable is False
    assert contract.summary.startswith(
        "Blend of Jonah Okafor (0.7) and Marguerite Vale (0.3), ties"
    )
    for stage in ("sft", "dpo"):
        folder = project.adapter_dir(BLEND, stage)
        assert (folder / "adapter_model.safetensors").is_file()
        summary = json.loads((folder / "training_summary.json").read_text())
        assert (summary["persona"], summary["stage"], summary["steps"]) == (BLEND, stage, 0)
        lineage = json.loads((folder / "merge.json").read_text())
        assert [s["weight"] for s in lineage["sources"]] == [0.7, 0.3]
        assert (lineage["method"], lineage["density"]) == ("ties", 0.5)
    from deploy.local import served_adapters

    folders, _ = served_adapters(project, "trained")  # `foundry serve` serves it like any other
    assert folders[BLEND] == project.adapter_dir(BLEND, project.registry.stage)
    output = " ".join(merged.output.split())
    assert "no composed persona vector" in output  # steering is off: no source has a vector
    assert "next: `foundry eval` (every persona" in output and f"register {BLEND}" in output


def test_the_flow_merges_evaluates_and_registers_the_derived_persona(project, second):
    from registry.models import get_alias_version, list_versions
    from registry.tracking import open_client

    assert second.is_completed(), second.message
    result = second.result()
    states = {r.name: r.state.name for r in settled_task_runs(second.state_details.flow_run_id)}
    for slug in SOURCES:
        assert states[f"train[{slug}]"] == "Cached" and states[f"register[{slug}]"] == "Cached"
    assert states[f"merge[{BLEND}]"] == "Completed"
    assert f"train[{BLEND}]" not in states and f"synthesize[{BLEND}]" not in states
    assert states[f"register[{BLEND}]"] == "Completed"
    assert result["derived"] == {BLEND: SOURCES}
    assert result["personas"][BLEND]["status"] == "retrained"
    from flows.retrain_summary import render_summary

    # The summary does not say "all checks passed" for a gate that left checks out.
    summary = " ".join(render_summary(result).split())
    assert "checks passed; content_recall" in summary and "not applied" in summary

    report = json.loads((Path(result["evaluation"]["folder"]) / "metrics.json").read_text())
    assert report["personas"] == SOURCES and BLEND in report["derived"]
    landing = report["metrics"]["dpo"]["landing"][BLEND]
    assert landing["sources"]["jonah-okafor"]["expected_share"] == 0.7
    assert landing["sources"]["jonah-okafor"]["conflicts"] == 2  # max_conflicts: 2, both theirs
    assert "## Derived personas" in (Path(result["evaluation"]["folder"]) / "report.md").read_text()

    client = open_client(project)
    [version] = list_versions(client, BLEND)
    assert version.tags["derived_from"] == ("jonah-okafor@v1:0.7,marguerite-vale@v1:0.3 ties d=0.5")
    assert "not applied" in version.tags["promotion.reasons"]
    assert get_alias_version(client, BLEND, "champion").version == version.version


def test_the_merge_key_follows_the_sources_adapters(project, second):
    from foundry.orchestration.derived import merge_key

    before = merge_key(project, BLEND, "base")
    assert merge_key(project, BLEND, "base") == before
    weights = project.adapter_dir("marguerite-vale", "dpo") / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")  # a retrained source: new bytes

    assert merge_key(project, BLEND, "base") != before
