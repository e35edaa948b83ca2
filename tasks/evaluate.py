"""Prefect tasks of the evaluation stage: evaluate, publish the report, log it to MLflow.

Public entry points: `evaluate_task` (the `evaluate` flow's: logs into a given MLflow run) and
`evaluation_task` (the retrain flow's: its own `evaluation` run, plus each persona's gate
metrics). The evaluation itself is `foundry.evaluation.run.evaluate`; the MLflow logging is
`registry.tracking`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import FoundryConfig, load_config
from foundry.evaluation.cache import CACHE_DIRNAME
from foundry.evaluation.run import EVAL_DIRNAME, JUDGE_DIRNAME, evaluate
from foundry.evaluation.schema import EvalReport
from foundry.evaluation.summary import flat_intervals, flat_metrics
from foundry.evaluation.verdict import headline_rows
from foundry.orchestration.executors import run_model_step
from registry.promotion import persona_metrics
from registry.tracking import log_eval_report, log_evaluation_run, tracking_uri


def _config(config_path: str | None) -> FoundryConfig:
    return load_config(Path(config_path) if config_path else None)


def _publish(report: EvalReport, folder: Path) -> None:
    """The report and its summary table as the task run's Prefect artifacts."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(key="evaluation-report", markdown=(folder / "report.md").read_text())
    create_table_artifact(key="evaluation-summary", table=headline_rows(report))


@task(name="evaluate")
def evaluate_task(
    config_path: str | None,
    personas: list[str] | None = None,
    variants: list[str] | None = None,
    data_rev: str = "",
    mlflow_run_id: str | None = None,
    adapters_dir: str | None = None,
) -> dict[str, Any]:
    """Evaluate, publish the report as Prefect artifacts, and log to MLflow when given a run.

    `adapters_dir` evaluates the adapters found there (e.g. the champions) instead of the ones
    trained last, and writes the report beside the usual one (`.foundry/eval-champions/`)."""
    config = _config(config_path)
    out_dir = None
    if adapters_dir:
        config = config.with_adapters_dir(Path(adapters_dir))
        out_dir = config.cache_dir / f"{EVAL_DIRNAME}-champions"
    report, folder = evaluate(
        config, personas=personas, variants=variants, data_rev=data_rev, out_dir=out_dir
    )
    _publish(report, folder)
    if mlflow_run_id:
        log_eval_report(report, folder, mlflow_run_id, tracking_uri(config))
    return {"folder": str(folder), "metrics": flat_metrics(report)}


def evaluate_personas(config_path: str | None, personas: list[str], data_rev: str) -> dict:
    """The evaluation's answers and scores (where the run puts model steps: here, or a Ray
    node); the report as JSON and its folder."""
    report, folder = evaluate(_config(config_path), personas=personas, data_rev=data_rev)
    return {"report": report.model_dump(mode="json"), "folder": str(folder)}


@task(name="evaluate-personas")
def evaluation_task(
    config_path: str | None, personas: list[str], data_rev: str = ""
) -> dict[str, Any]:
    """The retrain flow's evaluation: report artifacts, an MLflow `evaluation` run, and each
    persona's gate metrics for the registry."""
    from prefect.logging import get_run_logger

    started = time.perf_counter()
    config = _config(config_path)
    cache = config.cache_dir
    evaluated = run_model_step(
        "evaluate", evaluate_personas, config_path, personas, data_rev, log=get_run_logger(),
        outputs=[cache / EVAL_DIRNAME, cache / CACHE_DIRNAME, cache / JUDGE_DIRNAME],
    )  # fmt: skip
    report, folder = EvalReport.model_validate(evaluated["report"]), Path(evaluated["folder"])
    _publish(report, folder)
    run_id = log_evaluation_run(config, report, folder, data_rev)
    stage = config.registry.stage
    per_persona = (
        {slug: persona_metrics(report, stage, slug) for slug in personas}
        if stage in report.metrics
        else {}
    )
    return {
        "folder": str(folder),
        "metrics": flat_metrics(report),
        "intervals": flat_intervals(report),
        "per_persona": per_persona,
        "run_id": run_id,
        "seconds": round(time.perf_counter() - started, 2),
    }
