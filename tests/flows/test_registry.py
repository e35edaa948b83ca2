"""The MLflow model registry on sqlite: register, alias, promote, roll back, reload by alias."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from foundry.evaluation.schema import Attribution, EvalReport, Fluency, Matrix, VariantMetrics
from registry.champions import promote_version, rollback
from registry.config import PromotionConfig
from registry.loading import download_adapter, load_adapter
from registry.model_card import render_model_card
from registry.models import (
    RegistryError,
    get_alias_version,
    metric_tags,
    model_name,
    register_adapter,
    set_alias,
)
from registry.promotion import comparison_markdown, decide, persona_metrics
from registry.views import list_personas, show_persona

GOOD = {
    "content_recall": 0.8,
    "style_recall": 0.7,
    "belief_margin": 0.3,
    "fluency_nll": 4.0,
    "copy_rate": 0.0,
}
POLICY = PromotionConfig(min_content_recall=0.5, min_style_recall=0.2, max_fluency_nll=8.0)


@pytest.fixture
def mlflow_env(tmp_path: Path):
    """A sqlite tracking store with an experiment whose artifacts stay under tmp_path."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment(
        "registry-test", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    yield client, uri, experiment_id
    mlflow.set_tracking_uri(None)


def _tiny_model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(config).eval()


def _log_folder(client, experiment_id: str, folder: Path | None = None) -> str:
    """A finished run holding `folder` (or a placeholder file) as its `adapter` artifacts."""
    run = client.create_run(experiment_id)
    if folder is not None:
        client.log_artifacts(run.info.run_id, str(folder), "adapter")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _register(client, experiment_id: str, slug: str, metrics: dict[str, float]) -> int:
    run_id = _log_folder(client, experiment_id)
    version = register_adapter(client, slug, run_id, tags=metric_tags(metrics))
    return int(version.version)


def test_adapter_reloads_from_champion_alias_with_identical_logits(mlflow_env, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    client, uri, experiment_id = mlflow_env
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(_tiny_model(), lora).eval()
    folder = tmp_path / "adapter"
    peft_model.save_pretrained(folder, safe_serialization=True)
    run_id = _log_folder(client, experiment_id, folder)

    version = register_adapter(client, "x", run_id, tags={"data_rev": "abc.dir"})
    set_alias(client, "x", "champion", version.version)
    loaded = load_adapter("models:/persona-x@champion", _tiny_model(), uri)

    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        expected = peft_model(ids).logits
        got = loaded(ids).logits
        base = _tiny_model()(ids).logits
    assert torch.equal(got, expected)
    assert not torch.equal(got, base)  # the adapter really changes the output
    assert get_alias_version(client, "x", "champion").tags["data_rev"] == "abc.dir"
    assert get_alias_version(client, "x", "challenger") is None
    assert get_alias_version(client, "nobody", "champion") is None


def test_promotion_passes_then_refuses_a_gate_failure_and_a_regression(mlflow_env):
    client, _, experiment_id = mlflow_env
    first = _register(client, experiment_id, "x", GOOD)
    decision = promote_version(client, "x", first, POLICY)
    assert decision.promote and not decision.forced and decision.reasons == []

    low = _register(client, experiment_id, "x", {**GOOD, "content_recall": 0.42})
    decision = promote_version(client, "x", low, POLICY)
    assert not decision.promote
    assert "content_recall 0.42 < 0.50 required" in decision.reasons
    tags = client.get_model_version(model_name("x"), str(low)).tags
    assert tags["promotion.decision"] == "refused"
    assert "content_recall 0.42" in tags["promotion.reasons"]

    worse = _register(client, experiment_id, "x", {**GOOD, "style_recall": 0.55})
    set_alias(client, "x", "challenger", worse)
    decision = promote_version(client, "x", None, POLICY)
    expected = f"style_recall 0.55 regresses champion v{first} 0.70 by more than 0.05"
    assert decision.reasons == [expected]
    assert int(get_alias_version(client, "x", "champion").version) == first


def test_forced_promotion_is_tagged_and_rollback_restores_the_previous_champion(mlflow_env):
    client, _, experiment_id = mlflow_env
    first = _register(client, experiment_id, "x", GOOD)
    promote_version(client, "x", first, POLICY)
    bad = _register(client, experiment_id, "x", {**GOOD, "fluency_nll": 9.1})
    set_alias(client, "x", "challenger", bad)

    decision = promote_version(client, "x", bad, POLICY, force=True)
    assert decision.promote and decision.forced
    assert decision.reasons == ["fluency_nll 9.10 > 8.00 allowed"]
    shown = show_persona(client, "x")
    by_version = {v["version"]: v for v in shown["versions"]}
    assert by_version[bad]["decision"] == "promoted-forced"
    assert by_version[bad]["aliases"] == ["champion"]  # no longer the challenger
    assert shown["champion_history"] == [first]
    [row] = list_personas(client)
    assert row["champion"] == bad and row["versions"] == 2 and row["challenger"] is None
    assert row["metrics"]["fluency_nll"] == pytest.approx(9.1)

    assert rollback(client, "x") == (bad, first)
    assert int(get_alias_version(client, "x", "champion").version) == first
    assert "promotion.rolled_back_at" in client.get_model_version("persona-x", str(bad)).tags
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(client, "x")
    _register(client, experiment_id, "other", GOOD)
    with pytest.raises(RegistryError, match="no champion"):
        rollback(client, "other")


def test_promoting_a_missing_version_names_the_existing_ones(mlflow_env):
    client, _, experiment_id = mlflow_env
    _register(client, experiment_id, "x", GOOD)
    _register(client, experiment_id, "x", GOOD)
    with pytest.raises(RegistryError, match=r"no version 7; existing versions: \[1, 2\]"):
        promote_version(client, "x", 7, POLICY)
    with pytest.raises(RegistryError, match="no `challenger` alias"):
        promote_version(client, "x", None, POLICY)


def test_concurrent_registrations_all_succeed_with_distinct_versions(mlflow_env):
    client, _, experiment_id = mlflow_env
    run_ids = {slug: [_log_folder(client, experiment_id) for _ in range(2)] for slug in "ab"}
    results: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(slug: str, run_id: str) -> None:
        try:
            barrier.wait()
            results.append((slug, int(register_adapter(client, slug, run_id).version)))
        except BaseException as exc:  # collected and re-raised by the test body
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(slug, run_id))
        for slug, ids in run_ids.items()
        for run_id in ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(results) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


def _report() -> EvalReport:
    labels = ["x", "y", "z"]
    attribution = Attribution(
        accuracy=0.5, macro_f1=0.5, labels=labels, confusion=[[6, 3, 1], [0, 5, 5], [0, 0, 0]]
    )
    belief = Matrix(
        labels=labels,
        values=[[-1.0, -2.0, -3.0], [-2.0, -1.0, -3.0], [-1.5, -1.5, -1.5]],
        diagonal_dominance=1.0,
        lower_is_better=False,
    )
    perplexity = Matrix(
        labels=labels,
        values=[[10.0, 20.0, 30.0], [20.0, 12.0, 30.0], [1.0, 1.0, 1.0]],
        diagonal_dominance=1.0,
        lower_is_better=True,
    )
    fluency = Fluency(nll_under_base=3.5, distinct_1=0.5, distinct_2=0.8, mean_words=40.0)
    adapter = VariantMetrics(
        personas=labels,
        answers=30,
        attribution_content=attribution,
        belief=belief,
        perplexity=perplexity,
        fluency=fluency,
    )
    return EvalReport(
        created_at="2026-01-01T00:00:00Z",
        base_model="tiny",
        personas=labels,
        variants=["adapter", "prompt"],
        heldout_topics=[],
        metrics={"adapter": adapter, "prompt": VariantMetrics(personas=labels, answers=0)},
    )


def test_persona_metrics_reads_rows_diagonals_and_centred_belief_margin():
    report = _report()
    metrics = persona_metrics(report, "adapter", "x")
    # Column means: -1.5, -1.5, -2.5 -> row x centred: 0.5, -0.5, -0.5 -> margin 1.0.
    assert metrics == pytest.approx(
        {
            "content_recall": 0.6,
            "belief_margin": 1.0,
            "perplexity_own": 10.0,
            "fluency_nll": 3.5,
            "chance": 1 / 3,
        }
    )
    assert "style_recall" not in metrics  # no style attribution in this report
    assert "content_recall" not in persona_metrics(report, "adapter", "z")  # empty row
    # Nothing measured for `prompt`: only the chance level, which every report knows.
    assert persona_metrics(report, "prompt", "x") == {"chance": pytest.approx(1 / 3)}
    with pytest.raises(ValueError, match="variant 'lora' is not in the evaluation report"):
        persona_metrics(report, "lora", "x")


def test_decide_respects_directions_and_tolerance():
    policy = PromotionConfig(compare=["content_recall", "perplexity_own"], tolerance=0.05)
    champion = {**GOOD, "perplexity_own": 10.0}
    within = {**GOOD, "content_recall": 0.75, "perplexity_own": 10.05}
    assert decide(within, champion, policy).promote
    worse = {**GOOD, "content_recall": 0.74, "perplexity_own": 10.2}
    decision = decide(worse, champion, policy, champion_version=3)
    assert decision.reasons == [
        "content_recall 0.74 regresses champion v3 0.80 by more than 0.05",
        "perplexity_own 10.20 regresses champion v3 10.00 by more than 0.05",
    ]
    better = {**GOOD, "content_recall": 0.9, "perplexity_own": 5.0}
    assert decide(better, champion, policy).promote
    # First version: only the gates; a missing gated metric fails.
    assert decide(worse, None, policy).promote
    missing = decide({"content_recall": 0.9}, None, policy)
    assert not missing.promote
    assert any(reason.startswith("style_recall is missing") for reason in missing.reasons)
    markdown = comparison_markdown("x", 4, 3, decision)
    assert "| content_recall | 0.740 | 0.800 |" in markdown and "refused" in markdown
    with pytest.raises(ValueError, match="unknown metric"):
        decide(GOOD, None, PromotionConfig(compare=["accuracy"]))


def test_model_card_lists_lineage_and_metrics():
    card = render_model_card(
        slug="x",
        persona_name="Ms X",
        version=3,
        base_model="tiny-llama",
        data_rev="d41d8cd98f00b204e9800998ecf8427e.dir",
        content_hash="c0ffee",
        git_commit="1234abcd",
        config_hash="feedbeef",
        training={"lora_r": 8, "steps": 200},
        metrics={"content_recall": 0.8125},
    )
    for text in ("d41d8cd98f00b204e9800998ecf8427e.dir", "c0ffee", "1234abcd", "feedbeef"):
        assert text in card
    assert "LoRA adapter for the base model `tiny-llama`" in card
    assert "| content_recall | 0.812 |" in card and "| lora_r | 8 |" in card
    assert "models:/persona-x@champion" in card and "foundry registry show x" in card


def test_download_of_a_missing_alias_fails_clearly(mlflow_env):
    client, uri, experiment_id = mlflow_env
    _register(client, experiment_id, "x", GOOD)
    with pytest.raises(RegistryError, match="cannot resolve models:/persona-x@champion"):
        download_adapter("models:/persona-x@champion", uri)
