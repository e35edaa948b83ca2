"""`evaluate` on a small tiny base: bad input, the report folder, MLflow and the Prefect flow."""

from __future__ import annotations

import json
import shutil

import pytest

from foundry.config import load_config
from foundry.evaluation.run import EvaluationError, evaluate
from foundry.evaluation.schema import EvalReport
from foundry.evaluation.summary import flat_metrics
from registry.tracking import log_eval_report
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow

SMALL = """
base_model: {tiny: {pretrain_steps: 10, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
evaluation: {prompts_per_persona: 3, max_conflicts: 2, heldout_items: 4, max_new_tokens: 16,
  embeddings: tfidf}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from foundry.training.base_model import ensure_base

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
    assert report.variants == ["base", "prompt"] and len(report.conflict_ids) == 2
    # Three test topics and two conflict questions, every persona answering each.
    assert report.heldout_topics[3:] == [f"conflict-{c}" for c in report.conflict_ids]
    assert "train + validation texts" in report.classifier_texts
    for metrics in report.metrics.values():
        assert metrics.answers == 4 * 5
        assert metrics.attribution_style.labels == report.personas
        assert sum(map(sum, metrics.attribution_content.confusion)) == 20
        conflicts = metrics.conflicts
        assert (conflicts.conflicts, conflicts.answers) == (2, 4)
        low, high = conflicts.likelihood_interval
        assert 0.0 <= low <= conflicts.likelihood <= high <= 1.0
        assert 0.0 <= conflicts.embedding <= 1.0 and conflicts.answer_cosine is not None
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
        (p, v)
        for p in ("jonah-okafor", "tobias-renn")
        for v in ("sft", "dpo", "steer", "dpo+steer")
    }
    assert all("no persona vector" in s.reason for s in report.skipped if s.variant == "steer")
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
    log_eval_report(report, folder, run.info.run_id, uri)

    logged = client.get_run(run.info.run_id).data.metrics
    assert logged == pytest.approx(flat_metrics(report))
    assert "eval.prompt.style_accuracy" in logged
    tags = client.get_run(run.info.run_id).data.tags
    low, high = (float(x) for x in tags["interval.eval.prompt.style_accuracy"].split(","))
    assert low <= logged["eval.prompt.style_accuracy"] <= high
    assert "interval.eval.prompt.copy_rate" in tags
    names = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/report.md"} <= names


def test_the_flow_publishes_the_report_as_artifacts(prefect_harness, config):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.evaluate import evaluate_flow

    result = evaluate_flow(
        str(config.source), ["jonah-okafor", "priya-castellanos"], ["base"], champions=False
    )
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
    from foundry.synthesis.jobs import SynthesisError

    with pytest.raises(SynthesisError, match="ANTHROPIC_API_KEY is not set"):
        evaluate(
            config, variants=["base"], out_dir=tmp_path / "r", judge=True,
            settings=Settings(anthropic_api_key=None),
        )  # fmt: skip
    assert not (tmp_path / "r").exists()


# The eval cache: a rerun computes only the batches whose inputs changed, with the same results.

PAIR = ["jonah-okafor", "tobias-renn"]


def _write_adapter(config, slug: str, stage: str, seed: int) -> None:
    """A random, non-zero LoRA adapter on the tiny base (standing in for a trained one)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from foundry.training.tiny_cache import latest_tiny
    from foundry.training.tiny_model import load_tiny_folder

    model, _ = load_tiny_folder(latest_tiny(config))
    torch.manual_seed(seed)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, lora).save_pretrained(config.adapter_dir(slug, stage))


@pytest.fixture(scope="module")
def adapted_root(config, tmp_path_factory):
    """The small project with an sft adapter for each persona of PAIR, and no eval cache."""
    root = tmp_path_factory.mktemp("adapted") / "project"
    skip = shutil.ignore_patterns("eval-cache", "eval")
    shutil.copytree(config.source.parent, root, ignore=skip)
    adapted = load_config(root / "foundry.yaml")
    for seed, slug in enumerate(PAIR, start=1):
        _write_adapter(adapted, slug, "sft", seed)
    return root


@pytest.fixture
def adapted(adapted_root, tmp_path):
    """A fresh copy of the adapted project: each test starts with an empty eval cache."""
    import torch

    shutil.copytree(adapted_root, tmp_path / "project")
    # One thread: the models are tiny, and two threads on a busy 2-core runner thrash.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_config(tmp_path / "project" / "foundry.yaml")
    torch.set_num_threads(threads)


def _outputs(folder):
    """metrics.json without its timestamp, and answers.jsonl."""
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.pop("created_at")
    return metrics, (folder / "answers.jsonl").read_text()


def _evaluate(config, folder, variants, cache=True):
    """Evaluate PAIR into `folder`; the cache's counters."""
    from foundry.evaluation.cache import CacheStats

    stats = CacheStats()
    evaluate(
        config, personas=PAIR, variants=variants, out_dir=folder, cache=cache, cache_stats=stats
    )
    return stats


def test_a_rerun_reuses_every_batch_without_loading_the_model(adapted, tmp_path):
    from foundry.evaluation.cache import CACHE_DIRNAME, CACHE_FILENAME

    first = _evaluate(adapted, tmp_path / "first", ["base", "sft"])
    second = _evaluate(adapted, tmp_path / "second", ["base", "sft"])
    assert first.computed["answers"] == 4 and first.is_model_loaded
    assert first.reused["scores"] > 0  # the base variant's matrix batches: the same per persona
    assert sum(second.computed.values()) == 0 and not second.is_model_loaded
    assert second.reused == first.reused + first.computed
    assert _outputs(tmp_path / "second") == _outputs(tmp_path / "first")

    # A run killed while writing leaves a cut-off last line: dropped, its batch computed again.
    cache_file = adapted.cache_dir / CACHE_DIRNAME / CACHE_FILENAME
    with cache_file.open("r+b") as handle:
        handle.truncate(cache_file.stat().st_size - 20)
    repaired = _evaluate(adapted, tmp_path / "repaired", ["base", "sft"])
    assert sum(repaired.computed.values()) == 1
    assert all(json.loads(line) for line in cache_file.read_text().splitlines())
    assert _outputs(tmp_path / "repaired") == _outputs(tmp_path / "first")


def test_new_weights_for_one_persona_redo_only_its_batches(adapted, tmp_path):
    changed, kept = PAIR
    cold = _evaluate(adapted, tmp_path / "cold", ["sft"])
    _write_adapter(adapted, changed, "sft", seed=99)  # "retrained" with another seed
    rerun = _evaluate(adapted, tmp_path / "rerun", ["sft"])
    fresh = _evaluate(adapted, tmp_path / "fresh", ["sft"], cache=False)

    assert set(rerun.computed_by) == {changed}
    assert rerun.computed_by[changed] == cold.computed_by[changed] > 1
    assert rerun.reused["answers"] == 1  # the kept persona's
    assert rerun.computed["embeddings"] == 2  # both personas' answers (homogeneity, conflicts)
    assert fresh.computed == cold.computed  # without the file, the same work
    assert _outputs(tmp_path / "rerun") == _outputs(tmp_path / "fresh")
    before, after = (_outputs(tmp_path / n)[1].splitlines() for n in ("cold", "rerun"))
    assert [r for r in before if kept in r] == [r for r in after if kept in r]
    assert [r for r in before if changed in r] != [r for r in after if changed in r]
