"""The retrain flow under Prefect's test harness: it validates, versions and reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from foundry.config import load_config
from tasks.versioning import init_project, read_data_version
from tests.conftest import make_project

pytestmark = pytest.mark.slow


@pytest.fixture
def initialised(tmp_path: Path):
    root = make_project(tmp_path / "repo", git=True)
    config = load_config(root / "foundry.yaml")
    init_project(config)
    return config


def _flow_logs(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs reach the API in batches

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        return [f"{log.name}: {log.message}" for log in logs]

    return asyncio.run(read())


def _artifact(key: str, flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    async def read() -> str:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[key]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                )
            )
        return str(found[0].data)

    return asyncio.run(read())


def test_retrain_validates_versions_and_summarises(prefect_harness, initialised):
    from flows.retrain import retrain

    state = retrain(config_path=str(initialised.source), train=False, return_state=True)

    assert state.is_completed()
    result = state.result()
    version = read_data_version(initialised)
    assert result["data_rev"] == version.data_rev
    assert set(result["personas"]) == set(version.personas)
    for slug, row in result["personas"].items():
        assert row["content_hash"] == version.personas[slug]
        assert row["items"] == row["train"] + row["eval"] >= 80
    summary = _artifact("retrain-summary", state.state_details.flow_run_id)
    assert version.data_rev in summary
    assert "tobias-renn" in summary and "Not run yet" in summary
    logs = _flow_logs(state.state_details.flow_run_id)
    assert any(line.startswith("foundry.") and "retrain done" in line for line in logs), logs


def test_retrain_on_one_persona(prefect_harness, initialised):
    from flows.retrain import retrain

    result = retrain(config_path=str(initialised.source), personas=["jonah-okafor"], train=False)

    assert list(result["personas"]) == ["jonah-okafor"]


def test_retrain_fails_naming_the_bad_file_and_keeps_the_data_version(prefect_harness, initialised):
    from flows.retrain import retrain

    before = read_data_version(initialised)
    bad = initialised.persona_dir("tobias-renn") / "corpus" / "posts.jsonl"
    bad.write_text(bad.read_text() + "{not json\n")

    state = retrain(config_path=str(initialised.source), train=False, return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match=r"posts\.jsonl, line \d+: not valid JSON"):
        state.result()
    assert read_data_version(initialised).data_rev == before.data_rev


def test_retrain_without_personas_fails_and_says_how_to_start(prefect_harness, tmp_path):
    from flows.retrain import retrain

    root = make_project(tmp_path / "empty")
    (root / "data" / "personas").mkdir(parents=True)

    state = retrain(config_path=str(root / "foundry.yaml"), train=False, return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match="no personas in .*foundry init"):
        state.result()


SMALL_TRAINING = """
base_model: {tiny: {pretrain_steps: 20, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
training:
  lora: {r: 4, alpha: 8}
  sft: {max_steps: 3, eval_steps: 3, batch_size: 4, max_length: 96}
  dpo: {max_steps: 2, eval_steps: 2, batch_size: 2, max_length: 96}
"""


def test_retrain_trains_sft_then_dpo_and_reports_losses(prefect_harness, tmp_path):
    from flows.retrain import retrain

    root = make_project(tmp_path / "repo", git=True, config_text=SMALL_TRAINING)
    config = load_config(root / "foundry.yaml")
    init_project(config)

    state = retrain(
        config_path=str(root / "foundry.yaml"), personas=["tobias-renn"], return_state=True
    )
    result = state.result()

    adapters = result["personas"]["tobias-renn"]["adapters"]
    assert set(adapters) == {"sft", "dpo"}
    for stage in ("sft", "dpo"):
        folder = config.adapter_dir("tobias-renn", stage)
        assert (folder / "adapter_model.safetensors").is_file()
        assert adapters[stage]["summary"]["data_rev"] == result["data_rev"]
        assert adapters[stage]["summary"]["steps"] == (3 if stage == "sft" else 2)
    summary = _artifact("retrain-summary", state.state_details.flow_run_id)
    sft_loss = adapters["sft"]["summary"]["best_eval_loss"]
    assert f"{sft_loss:.3f}" in summary
    # One persona: no attribution to gate on, so the version is registered but not promoted.
    registry = result["personas"]["tobias-renn"]["registry"]
    assert registry["version"] == 1 and registry["decision"] == "refused"
    assert any("content_recall is missing" in reason for reason in registry["reasons"])
    assert "| persona-tobias-renn | v1 | refused |" in summary
    assert (root / "mlflow.db").is_file()
