"""The `evaluate` flow: re-evaluate the registered champions on held-out prompts (weekly, by
schedule), or the adapters trained last, with the report and summary table as Prefect artifacts.

Champions are fetched from the registry into `.foundry/champions/` and evaluated there, so the
trained adapters in `.foundry/adapters/` are never touched; personas without a champion are left
out with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from foundry.evaluation.run import EvaluationError
from foundry.logs import get_logger, prefect_logs
from tasks.evaluate import evaluate_task

logger = get_logger(__name__)

CHAMPIONS_DIRNAME = "champions"


@task(name="fetch-champions")
def fetch_champions_task(config_path: str | None, personas: list[str] | None) -> dict[str, Any]:
    """Download every selected persona's champion; return the folder and the versions."""
    from foundry.config import load_config
    from foundry.data.validation import validate_personas
    from registry.loading import fetch_champions

    config = load_config(Path(config_path) if config_path else None)
    slugs = [p.slug for p in validate_personas(config, personas).personas]
    root = config.cache_dir / CHAMPIONS_DIRNAME
    versions = fetch_champions(config, slugs, root)
    for slug in slugs:
        if slug not in versions:
            logger.warning("persona %s has no champion yet; it is left out", slug)
    return {"folder": str(root), "versions": versions}


@flow(name="evaluate")
def evaluate_flow(
    config_path: str | None = None,
    personas: list[str] | None = None,
    variants: list[str] | None = None,
    mlflow_run_id: str | None = None,
    champions: bool = True,
) -> dict[str, Any]:
    """Evaluate the variants; returns `{"folder", "metrics": {"eval.<variant>.<metric>": value}}`
    (and `"champions": {slug: version}` when evaluating champions).

    Args:
        config_path: `foundry.yaml` to use (default: the one in the working directory).
        personas: slugs (default: every persona with a contract).
        variants: variants to evaluate (default `evaluation.variants`, skipping missing ones).
        mlflow_run_id: an MLflow run to log the metrics and report to.
        champions: evaluate the registered champions (as the `registry.stage` variant) rather
            than the adapters trained last.
    """
    with prefect_logs():
        if not champions:
            return evaluate_task(config_path, personas, variants, mlflow_run_id=mlflow_run_id)
        fetched = fetch_champions_task(config_path, personas)
        if not fetched["versions"]:
            raise EvaluationError(
                "no persona has a champion to evaluate; run `foundry run` first (or evaluate "
                "the adapters trained last: `champions=False`, `foundry eval`)"
            )
        result = evaluate_task(
            config_path, list(fetched["versions"]), variants, mlflow_run_id=mlflow_run_id,
            adapters_dir=fetched["folder"],
        )  # fmt: skip
        return {**result, "champions": fetched["versions"]}
