"""`evaluate` on a small tiny base: bad input, the report folder, MLflow and the Prefect flow."""

from __future__ import annotations

import json
import shutil

import pytest

from foundry.config import load_config
from foundry.eval_schema import EvalReport
from tasks.evaluate import EvaluationError, evaluate, flat_metrics, log_to_mlflow
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow

SMALL = """
base_model: {tiny: {pretrain_steps: 10, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
evaluation: {prompts_per_persona: 3, heldout_items: 4, max_new_tokens: 16, embeddings: tfidf}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from tasks.train import ensure_base

    root = make_project(tmp_path_factory.mktemp("evaluate") / "project", config_text=SMALL)
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    return config


@pytest.fixture(scope="module")
def base_and_prompt(config):
    return evaluate(config, variants=["base", "prompt"])


def test_base_and_prompt_report_every_metric(base_and_prompt):
    report, folder = base_and_prompt
    assert report.variants == ["base", "prompt"] and len(report.heldout_topics) == 3
    for metrics in report.metrics.values():
        assert metrics.answers == 4 * 3
        assert metrics.attribution_style.labels == report.personas
        assert sum(map(sum, metrics.attribution_content.confusion)) == 12
        assert metrics.fluency.nll_under_base > 0
        assert metrics.homogeneity.backend == "tfidf"
        assert len(metrics.perplexity.values) == 4 and len(metrics.belief.values[0]) == 4
        assert metrics.stance.positions > 0
    # The base variant is one model for all: every row of its perplexity matrix is the same.
    rows = report.metrics["base"].perplexity.values
    assert all(row == pytest.approx(rows[0]) for row in rows)
    assert EvalReport.model_validate_json((folder / "metrics.json").read_text()) == report


def test_explicit_variant_without_adapter_fails_and_default_skips_it(config, tmp_path):
    with pytest.raises(EvaluationError, match="no sft adapter for .*foundry train"):
        evaluate(config, variants=["sft"], out_dir=tmp_path / "a")
    report, _ = evaluate(config, personas=["jonah-okafor", "tobias-renn"], out_dir=tmp_path / "b")
    assert {(s.persona, s.variant) for s in report.skipped} == {
        (p, v) for p in ("jonah-okafor", "tobias-renn") for v in ("sft", "dpo")
    }
    assert report.variants == ["base", "prompt"]
    assert "skipped" in (tmp_path / "b" / "report.md").read_text().lower()


def test_one_persona_gets_notes_instead_of_comparisons(config, tmp_path):
    report, _ = evaluate(config, personas=["tobias-renn"], variants=["prompt"], out_dir=tmp_path)
    metrics = report.metrics["prompt"]
    assert metrics.attribution_style is None and metrics.homogeneity is None
    assert metrics.perplexity is None and metrics.stance is not None
    assert any("two personas" in note for note in report.notes)


def test_no_held_out_topics_is_a_clear_error(tmp_path):
    root = make_project(tmp_path / "p", config_text=SMALL)
    shutil.copytree(SAMPLE_DIR, root / "data")
    (root / "data" / "topics.yaml").write_text(
        "topics:\n  - {id: a, prompt: 'Is gold money?'}\n  - {id: b, prompt: 'Is AI a bubble?'}\n"
    )
    with pytest.raises(EvaluationError, match="no held-out debate prompts.*three groups"):
        evaluate(load_config(root / "foundry.yaml"), variants=["base"])


def test_a_failed_evaluation_keeps_the_previous_report(config, base_and_prompt):
    _, folder = base_and_prompt
    before = (folder / "metrics.json").read_bytes()
    with pytest.raises(EvaluationError):
        evaluate(config, variants=["dpo"], out_dir=folder)
    assert (folder / "metrics.json").read_bytes() == before


def test_metrics_and_report_reach_an_mlflow_run(config, base_and_prompt, tmp_path):
    from mlflow import MlflowClient

    report, folder = base_and_prompt
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("eval-test", artifact_location=tmp_path.as_uri())
    run = client.create_run(experiment)
    log_to_mlflow(report, folder, run.info.run_id, uri)

    logged = client.get_run(run.info.run_id).data.metrics
    assert logged == pytest.approx(flat_metrics(report))
    assert "eval.prompt.style_accuracy" in logged
    names = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/report.md"} <= names


def test_the_flow_publishes_the_report_as_artifacts(prefect_harness, config):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.evaluate import evaluate_flow

    result = evaluate_flow(str(config.source), ["jonah-okafor", "priya-castellanos"], ["base"])
    assert set(result["metrics"]) >= {"eval.base.style_accuracy", "eval.base.fluency_nll"}

    async def read():
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["evaluation-report", "evaluation-summary"])
                )
            )
        return {a.key: a.data for a in found}

    artifacts = asyncio.run(read())
    assert "# " in artifacts["evaluation-report"]
    table = artifacts["evaluation-summary"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert rows[0]["variant"] == "base"


def test_the_judge_counts_claudes_verdicts_and_caches_them(config, tmp_path):
    import hashlib

    from foundry.config import Settings
    from tests.fakes.anthropic_server import FakeAnthropicServer

    with FakeAnthropicServer() as server:
        server.reply_with = lambda system, user: "A" if "Debater profile" in user else None
        settings = Settings(anthropic_api_key=server.api_key, anthropic_base_url=server.base_url)
        report, folder = evaluate(
            config, variants=["base", "prompt"], out_dir=tmp_path / "r", judge=True,
            settings=settings,
        )  # fmt: skip
        asked = server.requests
        evaluate(config, variants=["base", "prompt"], out_dir=tmp_path / "r", judge=True,
                 settings=settings)  # fmt: skip
        assert server.requests == asked  # the verdicts came from the cache

    judge = report.metrics["base"].judge
    assert report.metrics["prompt"].judge is None  # the baseline is not judged against itself
    expected_a = [
        hashlib.sha256(f"base:{p}:{t}".encode()).digest()[0] % 2 == 0
        for p in report.personas
        for t in report.heldout_topics
    ]
    assert asked == judge.judgements == len(expected_a) and judge.invalid == 0
    assert judge.win_rate == pytest.approx(sum(expected_a) / len(expected_a))
    assert "judge win vs prompt" in (folder / "report.md").read_text()


def test_the_judge_without_a_key_fails_before_any_work(config, tmp_path):
    from foundry.config import Settings
    from foundry.synthesis_jobs import SynthesisError

    with pytest.raises(SynthesisError, match="ANTHROPIC_API_KEY is not set"):
        evaluate(
            config, variants=["base"], out_dir=tmp_path / "r", judge=True,
            settings=Settings(anthropic_api_key=None),
        )  # fmt: skip
    assert not (tmp_path / "r").exists()
