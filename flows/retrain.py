"""The `retrain` flow, the main job: validate the data, build the base model, synthesize debate
turns and preference pairs, version everything with DVC, then train each persona's SFT and DPO
adapters on it.

Stages still to come (synthesis, persona vectors, evaluation, registration, deployment) are listed
in `PENDING_STAGES` and reported in the run summary, so nobody mistakes this run for a full retrain.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from foundry.logs import get_logger, prefect_logs
from tasks.corpus import validate_data
from tasks.evaluate import evaluate_task
from tasks.preferences import pairs_task
from tasks.register import register_task
from tasks.synth import synth_task
from tasks.train import build_base_task, train_adapter_task
from tasks.versioning import version_data_task

logger = get_logger(__name__)

PENDING_STAGES = (
    "persona vectors (issue 8)",
    "deployment (issue 9)",
)


@flow(name="retrain")
def retrain(
    config_path: str | None = None,
    personas: list[str] | None = None,
    train: bool = True,
    synthesize: bool = True,
    provider: str = "",
) -> dict[str, Any]:
    """Validate, synthesize, version with DVC, train, evaluate, register and promote; summarise.

    Args:
        config_path: `foundry.yaml` to use (default: the one in the working directory).
        personas: slugs to run (default: `personas.include`, or every persona).
        train: build the base model, make preference pairs, and train SFT then DPO adapters for
            trainable personas, evaluate every variant on held-out prompts, then log everything
            to MLflow and register each persona's adapter, promoting it by policy.
        synthesize: generate synthetic debate turns (and, when training, pairs) first.
        provider: synthesis provider (default: `synthesis.provider`).

    Returns:
        `{"data_rev", "personas": {slug: {"content_hash", "adapters": {stage: summary},
        "synthesis", "pairs", "registry", **stats}}, "evaluation": {"folder", "metrics"},
        "cost_usd", "pending_stages"}`.
    """
    with prefect_logs():
        stats = validate_data(config_path, personas)
        trainable = [slug for slug, row in stats.items() if row["trainable"]]
        synthesis: dict[str, Any] = {"personas": {}, "cost_usd": 0.0}
        pairs: dict[str, Any] = {"personas": {}, "cost_usd": 0.0}
        if train:
            build_base_task(config_path)
        if synthesize and trainable:
            synthesis = synth_task(config_path, trainable, provider)
            if train:
                pairs = pairs_task(config_path, trainable, provider)
        version = version_data_task(config_path)
        adapters: dict[str, dict[str, Any]] = {slug: {} for slug in stats}
        for slug in trainable if train else []:
            for stage in ("sft", "dpo"):
                adapters[slug][stage] = train_adapter_task(
                    config_path, slug, stage, version["data_rev"]
                )
        evaluation: dict[str, Any] = {"metrics": {}, "folder": None}
        registration: dict[str, Any] = {}
        if train and trainable:
            evaluation = evaluate_task(config_path, trainable, data_rev=version["data_rev"])
            registration = register_task(
                config_path, trainable, version["data_rev"], version["personas"],
                evaluation["folder"], evaluation["metrics"],
            )  # fmt: skip
        result = {
            "data_rev": version["data_rev"],
            "evaluation": evaluation,
            "personas": {
                slug: {
                    "content_hash": version["personas"].get(slug, ""),
                    "adapters": adapters[slug],
                    "synthesis": synthesis["personas"].get(slug, {}),
                    "pairs": pairs["personas"].get(slug, {}),
                    "registry": registration.get(slug, {}),
                    **persona_stats,
                }
                for slug, persona_stats in stats.items()
            },
            "cost_usd": round(synthesis["cost_usd"] + pairs["cost_usd"], 6),
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
        f"Data version: `{result['data_rev']}`; synthesis cost ${result.get('cost_usd', 0):.4f}",
        "",
        "| persona | content hash | items | train | eval | turns kept | pairs | SFT eval loss "
        "| DPO eval loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for slug, row in result["personas"].items():
        losses = [_best_loss(row["adapters"].get(stage)) for stage in ("sft", "dpo")]
        turns = row.get("synthesis", {}).get("accepted", "-")
        pairs = sum(v for k, v in row.get("pairs", {}).items() if k != "eval") or "-"
        lines.append(
            f"| {slug} | `{row['content_hash']}` | {row['items']} | {row['train']} | "
            f"{row['eval']} | {turns} | {pairs} | {losses[0]} | {losses[1]} |"
        )
    lines += _evaluation_lines(result.get("evaluation", {}))
    lines += _registry_lines(result["personas"])
    lines += ["", "Not run yet (later issues add them):", ""]
    lines += [f"- {stage}" for stage in result["pending_stages"]]
    return "\n".join(lines)


EVAL_COLUMNS = (
    ("style acc", "style_accuracy"),
    ("content acc", "content_accuracy"),
    ("stance acc", "stance_accuracy"),
    ("belief dominance", "belief_dominance"),
    ("homogeneity", "homogeneity_cosine"),
)


def _evaluation_lines(evaluation: dict[str, Any]) -> list[str]:
    """A variant x metric table from the flat `eval.<variant>.<metric>` numbers."""
    metrics = evaluation.get("metrics") or {}
    variants = list(dict.fromkeys(key.split(".")[1] for key in metrics))
    if not variants:
        return []
    lines = ["", f"Evaluation (report: `{evaluation.get('folder')}/report.md`):", ""]
    lines.append("| variant | " + " | ".join(name for name, _ in EVAL_COLUMNS) + " |")
    lines.append("|---" * (len(EVAL_COLUMNS) + 1) + "|")
    for variant in variants:
        cells = [metrics.get(f"eval.{variant}.{key}") for _, key in EVAL_COLUMNS]
        text = [f"{c:.2f}" if isinstance(c, int | float) else "-" for c in cells]
        lines.append(f"| {variant} | " + " | ".join(text) + " |")
    return lines


def _registry_lines(personas: dict[str, Any]) -> list[str]:
    """Each persona's new model version and the promotion decision with its reasons."""
    rows = [(slug, row.get("registry") or {}) for slug, row in personas.items()]
    rows = [(slug, reg) for slug, reg in rows if reg]
    if not rows:
        return []
    lines = ["", "Registry:", "", "| persona | version | decision | champion | reasons |"]
    lines.append("|---|---|---|---|---|")
    for slug, reg in rows:
        reasons = "; ".join(reg.get("reasons", [])) or "all checks passed"
        lines.append(
            f"| persona-{slug} | v{reg['version']} | {reg['decision']} | "
            f"{'v' + str(reg['champion']) if reg.get('champion') else '-'} | {reasons} |"
        )
    return lines


def _best_loss(artifact: dict[str, Any] | None) -> str:
    if not artifact:
        return "-"
    best = artifact.get("summary", {}).get("best_eval_loss")
    return f"{best:.3f}" if isinstance(best, int | float) else "-"
