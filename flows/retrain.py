"""The `retrain` flow: the main job. Today it validates and versions the data.

Stages still to come (synthesis, SFT, DPO, persona vectors, evaluation, registration, deployment)
are listed in `PENDING_STAGES` and reported in the run summary, so nobody mistakes this run for a
full retrain.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from foundry.logs import get_logger, prefect_logs
from tasks.corpus import validate_data
from tasks.versioning import version_data_task

logger = get_logger(__name__)

PENDING_STAGES = (
    "synthesize debate turns (issue 4)",
    "preference pairs (issue 4)",
    "SFT and DPO adapters (issue 3)",
    "persona vectors (issue 8)",
    "evaluation (issue 5)",
    "registry and promotion (issue 6)",
    "deployment (issue 9)",
)


@flow(name="retrain")
def retrain(config_path: str | None = None, personas: list[str] | None = None) -> dict[str, Any]:
    """Validate the personas' data, version it with DVC, and summarise the run.

    Args:
        config_path: `foundry.yaml` to use (default: the one in the working directory).
        personas: slugs to validate (default: `personas.include`, or every persona).

    Returns:
        `{"data_rev", "personas": {slug: {"content_hash", **corpus stats}}, "pending_stages"}`.
    """
    with prefect_logs():
        stats = validate_data(config_path, personas)
        version = version_data_task(config_path)
        result = {
            "data_rev": version["data_rev"],
            "personas": {
                slug: {"content_hash": version["personas"].get(slug, ""), **persona_stats}
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
        "| persona | content hash | items | train | eval | ~tokens | duplicates dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for slug, row in result["personas"].items():
        dropped = row["exact_duplicates"] + row["near_duplicates"]
        lines.append(
            f"| {slug} | `{row['content_hash']}` | {row['items']} | {row['train']} | "
            f"{row['eval']} | {row['approx_tokens']} | {dropped} |"
        )
    lines += ["", "Not run yet (later issues add them):", ""]
    lines += [f"- {stage}" for stage in result["pending_stages"]]
    return "\n".join(lines)
