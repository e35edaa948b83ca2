"""Registration end to end on real MLflow (sqlite): runs, versions, promotion, rollback, lineage."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from foundry.config import load_config
from foundry.evaluation.run import evaluate
from foundry.evaluation.summary import flat_metrics
from registry.registration import register_retrain
from tests.conftest import SAMPLE_DIR, TINY_TRAINING, make_project

pytestmark = pytest.mark.slow

PERSONAS = ["jonah-okafor", "tobias-renn"]
SECRET = "fake-anthropic-key-for-lineage-test-0042"
SMALL = (
    TINY_TRAINING
    + """
registry: {promotion: {min_content_recall: 0.0, min_style_recall: 0.0, max_fluency_nll: 50}}
"""
)


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo, train_sft
    from foundry.training.base_model import ensure_base

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = make_project(tmp_path_factory.mktemp("register") / "project", config_text=SMALL)
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    for slug in PERSONAS:
        train_sft(config, slug, data_rev="rev-1")
        train_dpo(config, slug, pairs=load_pairs(config, slug), data_rev="rev-1")
    report, folder = evaluate(config, personas=PERSONAS, data_rev="rev-1")
    first = register_retrain(
        config, PERSONAS, data_rev="rev-1", content_hashes={s: f"hash-{s}" for s in PERSONAS},
        eval_folder=folder, eval_metrics=flat_metrics(report),
    )  # fmt: skip
    yield config, first, report
    monkeypatch.undo()


def _client(config):
    from mlflow import MlflowClient

    from registry.tracking import tracking_uri

    return MlflowClient(tracking_uri=tracking_uri(config))


def test_first_versions_pass_the_gates_and_become_champions(registered):
    config, first, _ = registered
    client = _client(config)
    for slug in PERSONAS:
        assert first[slug]["version"] == 1 and first[slug]["decision"] == "promoted"
        champion = client.get_model_version_by_alias(f"persona-{slug}", "champion")
        assert int(champion.version) == 1
        assert champion.tags["data_rev"] == "rev-1"
        assert champion.tags["content_hash"] == f"hash-{slug}"
        assert champion.tags["config_hash"] == config.config_hash()
        assert "metric.content_recall" in champion.tags
        assert "rev-1" in champion.description and "Intended use" in champion.description


def test_runs_are_nested_under_one_parent_with_lineage(registered):
    config, first, _ = registered
    client = _client(config)
    experiment = client.get_experiment_by_name(config.registry.experiment)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    names = sorted(r.data.tags["mlflow.runName"] for r in children)
    assert names == sorted(["eval", *(f"{s}-{st}" for s in PERSONAS for st in ("sft", "dpo"))])
    dpo = client.get_run(first["tobias-renn"]["run_id"])
    assert dpo.data.params["stage"] == "dpo" and dpo.data.tags["persona"] == "tobias-renn"
    assert "train_loss" in dpo.data.metrics
    artifacts = {a.path for a in client.list_artifacts(dpo.info.run_id)}
    assert {"adapter", "model_card.md", "promotion.md"} <= artifacts


def test_the_champion_loads_with_identical_logits(registered, tmp_path):
    import torch

    from foundry.training.adapters import attach_adapters
    from foundry.training.base_model import load_base
    from registry.loading import download_adapter
    from registry.tracking import tracking_uri

    config, _, _ = registered
    folder = download_adapter(
        "models:/persona-tobias-renn@champion", tracking_uri(config), tmp_path / "dl"
    )
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    logits = []
    for source in (config.adapter_dir("tobias-renn", "dpo"), folder):
        model = attach_adapters(load_base(config).model, {"x": source})
        with torch.inference_mode():
            logits.append(model(input_ids=ids).logits)
    assert torch.equal(logits[0], logits[1])


def test_a_second_retrain_is_compared_promoted_and_can_be_rolled_back(registered):
    from registry.champions import rollback
    from registry.models import RegistryError

    config, _, report = registered
    second = register_retrain(
        config, ["tobias-renn"], data_rev="rev-2", content_hashes={}, eval_folder=None
    )
    # No evaluation this time: the gates cannot be checked, so the version is refused.
    assert second["tobias-renn"]["version"] == 2 and second["tobias-renn"]["decision"] == "refused"
    assert any("content_recall" in r for r in second["tobias-renn"]["reasons"])
    client = _client(config)
    refused = client.get_model_version("persona-tobias-renn", "2")
    assert refused.tags["promotion.decision"] == "refused"
    assert int(client.get_model_version_by_alias("persona-tobias-renn", "champion").version) == 1
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(client, "tobias-renn")


def test_no_secret_reaches_params_tags_or_artifacts(registered, tmp_path):
    import mlflow

    from registry.tracking import tracking_uri

    config, first, _ = registered
    client = _client(config)
    experiment = client.get_experiment_by_name(config.registry.experiment)
    for run in client.search_runs([experiment.experiment_id]):
        texts = [*run.data.params.values(), *run.data.tags.values()]
        assert not any(SECRET in text for text in texts)
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, dst_path=str(tmp_path / run.info.run_id),
            tracking_uri=tracking_uri(config),
        )  # fmt: skip
        for path in Path(local).rglob("*"):
            if path.is_file() and path.suffix in {".json", ".md", ".txt", ".jsonl", ".yaml"}:
                assert SECRET not in path.read_text(errors="ignore"), path


def test_an_unreachable_tracking_server_fails_clearly_before_registering(registered):
    from registry.tracking import TrackingError

    config, _, _ = registered
    config.registry.tracking_uri = "http://127.0.0.1:9"
    try:
        with pytest.raises(TrackingError, match="cannot reach the MLflow tracking server"):
            register_retrain(config, ["tobias-renn"], data_rev="x", content_hashes={},
                             eval_folder=None)  # fmt: skip
    finally:
        config.registry.tracking_uri = ""
    versions = _client(config).search_model_versions("name = 'persona-tobias-renn'")
    assert len(versions) == 2


def test_registry_commands_list_show_promote_and_roll_back(registered, monkeypatch):
    from typer.testing import CliRunner

    import foundry.cli.common
    from foundry.cli.main import app

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)
    config, _, _ = registered
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["registry", *args, "--config", str(config.source)])

    listed = invoke("list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "persona-tobias-renn" in line)
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[2:4] == ["2", "v1"] and "rev-1" in row  # two versions, champion v1

    shown = invoke("show", "tobias-renn")
    assert shown.exit_code == 0 and "refused" in shown.output and "champion" in shown.output
    # The gates' figures, with the 95 % intervals they were judged on, and each decision.
    first = next(line for line in shown.output.splitlines() if line.startswith("v1: "))
    assert re.search(r"content_recall \d\.\d\d \[\d\.\d\d, \d\.\d\d\]", first), first
    assert "decision: all gates and comparisons passed" in shown.output

    refused = invoke("promote", "tobias-renn", "--version", "2")
    assert refused.exit_code == 1 and "content_recall is missing" in refused.output
    forced = invoke("promote", "tobias-renn", "--version", "2", "--force")
    assert forced.exit_code == 0 and "(forced)" in forced.output
    assert (
        int(_client(config).get_model_version_by_alias("persona-tobias-renn", "champion").version)
        == 2
    )

    rolled = invoke("rollback", "tobias-renn")
    assert rolled.exit_code == 0 and "v2 -> v1" in rolled.output
    missing = invoke("promote", "tobias-renn", "--version", "9")
    assert missing.exit_code == 1 and "no version 9" in missing.output
