"""Registration: log a retrain's adapters and evaluation to MLflow, register each persona's adapter
as a model version, and promote it by policy.

Public entry point: `register_retrain(config, ...)` (a parent run, nested sft/dpo/eval runs, one
model version per persona, challenger and champion aliases by `registry.promotion`). Every
decision, refusals included, is recorded on the version (tags) and in the run (`promotion.md`),
beside the model card (`model_card.md`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.data.personas import load_contract
from foundry.evaluation.schema import EvalReport
from foundry.logs import get_logger
from foundry.training.artifacts import AdapterArtifact, TrainingError, TrainingSummary
from registry.champions import promote, record_refusal
from registry.derived import DERIVED_TAG, adapter_tags, derived_tags
from registry.model_card import render_model_card
from registry.models import (
    get_alias_version,
    interval_tags,
    metric_tags,
    model_name,
    register_adapter,
    set_alias,
    version_intervals,
    version_metrics,
)
from registry.promotion import (
    Decision,
    comparison_markdown,
    decide,
    decision_text,
    persona_intervals,
    persona_metrics,
)
from registry.tracking import (
    experiment_id,
    finish_run,
    lineage_tags,
    log_adapter_run,
    log_eval_run,
    log_vector,
    open_client,
    start_parent_run,
)

logger = get_logger(__name__)

SUMMARY_FILE = "training_summary.json"


def register_retrain(
    config: FoundryConfig,
    personas: Sequence[str],
    *,
    data_rev: str,
    content_hashes: Mapping[str, str],
    eval_folder: Path | None,
    eval_metrics: Mapping[str, float] | None = None,
    flow_run_id: str = "",
    eval_run_id: str = "",
) -> dict[str, dict[str, Any]]:
    """Log and register every persona's adapters; promote those the policy lets through.

    Args:
        config: the project configuration (`registry:` section).
        personas: slugs whose adapters were trained.
        data_rev: the DVC data version they were trained on.
        content_hashes: persona -> content hash of its data.
        eval_folder: the evaluation report folder (`metrics.json`), if evaluation ran.
        eval_metrics: the flat evaluation metrics, logged to the eval run.
        flow_run_id: the Prefect flow run, for the lineage tags.
        eval_run_id: an MLflow run that already holds this evaluation (tagged on the versions
            instead of logging the evaluation again).

    Returns:
        persona -> {"version", "decision", "reasons", "champion", "run_id"}.

    Raises:
        TrackingError: the tracking server is unreachable (nothing is registered).
        TrainingError: a persona has no trained adapter for `registry.stage`.
    """
    client = open_client(config)
    report = _read_report(eval_folder)
    tags = lineage_tags(config, data_rev, flow_run_id)
    parent = start_parent_run(client, config, tags)
    results: dict[str, dict[str, Any]] = {}
    try:
        if report is not None and eval_folder is not None and not eval_run_id:
            eval_run_id = log_eval_run(
                client, config, parent, report, eval_folder, eval_metrics or {}, tags
            )
        for slug in personas:
            persona_tags = {**tags, "persona": slug, "content_hash": content_hashes.get(slug, "")}
            if eval_run_id:
                persona_tags["eval_run_id"] = eval_run_id
            results[slug] = _register_persona(config, client, parent, slug, persona_tags, report)
            results[slug]["experiment_id"] = experiment_id(client, config)
    except BaseException:
        finish_run(client, parent, failed=True)
        raise
    finish_run(client, parent)
    return results


def _register_persona(
    config: FoundryConfig,
    client: Any,
    parent: str,
    slug: str,
    tags: dict[str, str],
    report: EvalReport | None,
) -> dict[str, Any]:
    runs = {
        stage: log_adapter_run(client, config, parent, _artifact(config, slug, stage), tags)
        for stage in ("sft", "dpo")
        if (config.adapter_dir(slug, stage) / SUMMARY_FILE).is_file()
    }
    stage = config.registry.stage
    if stage not in runs:
        raise TrainingError(
            f"persona {slug} has no {stage} adapter in {config.adapter_dir(slug, stage)} to "
            f"register; train it (`foundry train --persona {slug}`)"
        )
    metrics = persona_metrics(report, stage, slug) if report and stage in report.metrics else {}
    intervals = persona_intervals(report, stage, slug) if report else {}
    vector = log_vector(
        client, runs[stage], config.vector_dir(slug), config.adapter_dir(slug, "dpo")
    )
    lineage = {**adapter_tags(config, slug, stage), **derived_tags(config, client, slug, stage)}
    version = register_adapter(
        client,
        slug,
        runs[stage],
        tags={**tags, "stage": stage, **metric_tags(metrics), **interval_tags(intervals), **vector,
              **lineage},
        description=f"{stage} adapter for persona {slug}, data {tags.get('data_rev', '?')}",
    )  # fmt: skip
    number = int(version.version)
    decision, champion_number = _gate(
        config, client, slug, number, metrics, intervals, is_derived=DERIVED_TAG in lineage
    )
    client.log_text(
        runs[stage],
        comparison_markdown(slug, number, champion_number, decision),
        "promotion.md",
    )
    card = _card(config, slug, number, tags, metrics)
    client.log_text(runs[stage], card, "model_card.md")
    client.update_model_version(model_name(slug), str(number), description=card)
    logger.info(
        "persona %s: %s v%d %s (%s)", slug, model_name(slug), number,
        "promoted to champion" if decision.promote else "not promoted",
        decision_text(decision.reasons, decision.notes),
    )  # fmt: skip
    return {
        "version": number,
        "decision": "promoted" if decision.promote else "refused",
        "reasons": decision.reasons,
        "notes": decision.notes,
        "champion": number if decision.promote else champion_number,
        "run_id": runs[stage],
    }


def _gate(
    config: FoundryConfig,
    client: Any,
    slug: str,
    number: int,
    metrics: dict[str, float],
    intervals: dict[str, list[float]],
    is_derived: bool = False,
) -> tuple[Decision, int | None]:
    """Compare version `number` with the champion, move the aliases and tag the decision (a
    derived persona is gated on what applies to it: `registry.promotion.decide`)."""
    champion = get_alias_version(client, slug, "champion")
    champion_metrics = version_metrics(champion) if champion else None
    champion_number = int(champion.version) if champion else None
    policy = config.registry.promotion
    decision = decide(
        metrics, champion_metrics, policy, champion_version=champion_number,
        intervals=intervals, champion_intervals=version_intervals(champion) if champion else None,
        is_derived=is_derived,
    )  # fmt: skip
    own = decide(metrics, None, policy, intervals=intervals, is_derived=is_derived)
    if own.promote:  # passed its own checks
        set_alias(client, slug, "challenger", number)
    if decision.promote:
        promote(client, slug, number, decision)
    else:
        record_refusal(client, slug, number, decision)
    return decision, champion_number


def _artifact(config: FoundryConfig, slug: str, stage: str) -> AdapterArtifact:
    folder = config.adapter_dir(slug, stage)
    summary = TrainingSummary.model_validate_json((folder / SUMMARY_FILE).read_text())
    return AdapterArtifact(persona=slug, stage=stage, path=folder, summary=summary)


def _read_report(folder: Path | None) -> EvalReport | None:
    if folder is None or not (folder / "metrics.json").is_file():
        return None
    return EvalReport.model_validate_json((folder / "metrics.json").read_text())


def _card(
    config: FoundryConfig, slug: str, version: int, tags: Mapping[str, str], metrics: dict
) -> str:
    contract, _ = load_contract(config.persona_dir(slug))
    summary = _artifact(config, slug, config.registry.stage).summary
    return render_model_card(
        slug=slug,
        persona_name=contract.name if contract else slug,
        version=version,
        base_model=summary.base_model,
        data_rev=tags.get("data_rev", ""),
        content_hash=tags.get("content_hash", ""),
        git_commit=tags.get("git_commit", ""),
        config_hash=tags.get("config_hash", ""),
        training=json.loads(summary.model_dump_json(exclude={"train_losses", "eval_losses"})),
        metrics=metrics,
        summary=contract.summary if contract else "",
    )
