"""The `evaluate` flow: evaluate every persona's variants on held-out prompts, on its own (after
training, or on a schedule), with the report and summary table as Prefect artifacts."""

from __future__ import annotations

from typing import Any

from prefect import flow

from foundry.logs import prefect_logs
from tasks.evaluate import evaluate_task


@flow(name="evaluate")
def evaluate_flow(
    config_path: str | None = None,
    personas: list[str] | None = None,
    variants: list[str] | None = None,
    mlflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Evaluate the variants; returns `{"folder", "metrics": {"eval.<variant>.<metric>": value}}`.

    Args:
        config_path: `foundry.yaml` to use (default: the one in the working directory).
        personas: slugs (default: every persona with a contract).
        variants: variants to evaluate (default `evaluation.variants`, skipping missing ones).
        mlflow_run_id: an MLflow run to log the metrics and report to.
    """
    with prefect_logs():
        return evaluate_task(config_path, personas, variants, mlflow_run_id=mlflow_run_id)
