"""The `retrain` flow, the main job: validate and version the data, build the base model, then
train each persona's SFT and DPO adapters.

Stages still to come (synthesis, persona vectors, evaluation, registration, deployment) are listed
in `PENDING_STAGES` and reported in the run summary, so nobody mistakes this run for a full retrain.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from foundry.logs import get_logger, prefect_logs
from tasks.corpus import validate_data
from tasks.train import build_base_task, train_adapter_task
from tasks.versioning import version_data_task

logger = get_logger(__name__)

PENDING_STAGES = (
    "synthesize debate turns and preference pairs (issue 4; DPO uses cross-persona pairs)",
    "persona vectors (issue 8)",
    "evaluation (issue 5)",
    "registry and promotion (issue 6)",
    "deployment (issue 9)",
)


@flow(name="retrain")
def retrain(
    config_path: str | None = None, personas: list[str] | None = None, train: bool = True
) -> dict[str, Any]:
    """Validate the personas' data, version it with DVC, train adapters, and summarise the run.

    Args:
        config_path: `foundry.yaml` to use (default: the one in the working directory).
        personas: slugs to run (default: `personas.include`, or every persona).
        train: build the base model and train SFT then DPO adapters for trainable personas.

    Returns:
        `{"data_rev", "personas": {slug: {"content_hash", "adapters": {stage: summary}, **stats}},
        "pending_stages"}`.
    """
    with prefect_logs():
        stats = validate_data(config_path, personas)
        version = version_data_task(config_path)
        adapters: dict[str, dict[str, Any]] = {slug: {} for slug in stats}
        if train:
            build_base_task(config_path)
            for slug in (s for s, row in stats.items() if row["trainable"]):
                for stage in ("sft", "dpo"):
                    adapters[slug][stage] = train_adapter_task(
                        config_path, slug, stage, version["data_rev"]
                    )
        result = {
            "data_rev": version["data_rev"],
            "personas": {
                slug: {
                    "content_hash": version["personas"].get(slug, ""),
                    "adapters": adapters[slug],
                    **persona_stats,
                }
                for slug, persona_stats in stats.items()
            },
            "pending_stages": list(PENDING_STAGES),
        }
        create_markdown_artifact(key="retrain-summary", markdown=render_summary(result))
        logger.info("retrain done: data %s, %d persona(s)", result["data_rev"], len(stats))
    return result


def render_summary(result: dict[str, Any]) -> str:
    """The run summary as Markdown: data version, per-persona table, stages not yet built."""
    lines = [
        "# Retrain summary",
        "",
        f"Data version: `{result['data_rev']}`",
        "",
        "| persona | content hash | items | train | eval | SFT eval loss | DPO eval loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for slug, row in result["personas"].items():
        losses = [_best_loss(row["adapters"].get(stage)) for stage in ("sft", "dpo")]
        lines.append(
            f"| {slug} | `{row['content_hash']}` | {row['items']} | {row['train']} | "
            f"{row['eval']} | {losses[0]} | {losses[1]} |"
        )
    lines += ["", "Not run yet (later issues add them):", ""]
    lines += [f"- {stage}" for stage in result["pending_stages"]]
    return "\n".join(lines)


def _best_loss(artifact: dict[str, Any] | None) -> str:
    if not artifact:
        return "-"
    best = artifact.get("summary", {}).get("best_eval_loss")
    return f"{best:.3f}" if isinstance(best, int | float) else "-"
