"""Evaluation runs: does each persona's variant speak, and reason, like that persona and no other?

Public entry points: `evaluate(config, ...)` returns an `EvalReport`
(`foundry/evaluation/schema.py`) and writes `metrics.json`, `report.md`, `answers.jsonl` and PNG
plots to one folder, atomically (`write_report`); `EvaluationError` says why it cannot run.

Every variant (`base`, `prompt`, `sft`, `dpo`) of every persona answers the held-out debate
prompts (test topics never synthesized or trained on, and each conflict's question). Style and
content attribution, fluency and homogeneity are measured on those answers; conflict fidelity on
the answers to the conflicts (`foundry.evaluation.conflicts`); the perplexity matrix on the
held-out corpus; stance and the belief matrix on the contracts' positions and the conflicts'
assumptions (`foundry.evaluation.scoring`). Every batch is
kept in `<cache_dir>/eval-cache` under a key of all it depends on, so a rerun computes only the
batches whose inputs changed (`foundry.evaluation.cache`), with the same results. The optional
judge asks Claude to compare each variant's answers with the prompt baseline's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from foundry.atomic import replace_dir, staged_dir
from foundry.config import FoundryConfig, Settings
from foundry.data.validation import validate_personas
from foundry.errors import FoundryError, raise_for_errors
from foundry.evaluation.answers import EvalSetup, LazyModel, generate_answers, resolve_variants
from foundry.evaluation.cache import CacheStats, open_eval_cache
from foundry.evaluation.judge import judge_variants
from foundry.evaluation.measures import measure_variant, real_corpus_baselines
from foundry.evaluation.plots import write_plots
from foundry.evaluation.report import render_markdown
from foundry.evaluation.schema import EvalReport
from foundry.evaluation.verdict import Guards
from foundry.logs import get_logger
from foundry.synthesis.generation_cache import GENERATIONS_FILENAME, GenerationCache
from foundry.synthesis.jobs import Budget, Provider
from foundry.synthesis.providers import make_provider, resolve_provider_name

logger = get_logger(__name__)

EVAL_DIRNAME = "eval"
JUDGE_DIRNAME = "eval-judge"  # the judge's cache: outside the report folder, which is replaced
Progress = Callable[[str, int], Callable[[int], None]]


class EvaluationError(FoundryError):
    """Evaluation cannot run: nothing held out, no personas, or a requested variant is missing."""


def evaluate(
    config: FoundryConfig,
    *,
    personas: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    out_dir: Path | None = None,
    data_rev: str = "",
    progress: Progress | None = None,
    judge: bool | None = None,
    settings: Settings | None = None,
    cache: bool = True,
    cache_stats: CacheStats | None = None,
) -> tuple[EvalReport, Path]:
    """Evaluate the variants of the selected personas and write the report folder.

    Args:
        config: the project configuration (`evaluation:` section).
        personas: slugs (default: every persona with a contract).
        variants: variants to evaluate; when given explicitly, a missing adapter is an error,
            otherwise (`evaluation.variants`) it is skipped with a note.
        out_dir: where the report goes (default `<cache_dir>/eval`); replaced atomically.
        data_rev: the data version recorded in the report.
        progress: `progress(label, steps)` per stage; returns a per-step hook.
        judge: ask Claude to compare each variant's answers with the prompt baseline's
            (default `evaluation.judge`); needs ANTHROPIC_API_KEY in `settings`.
        settings: secrets from the environment (read when None and the judge is on).
        cache: reuse and keep answer, scoring and embedding batches in `<cache_dir>/eval-cache`
            (results are the same either way; False computes every batch).
        cache_stats: filled with the batches reused and computed, and whether the model loaded.

    Returns:
        The report and the folder it was written to.

    Raises:
        EvaluationError: no held-out prompts, no personas, or an explicit variant is missing.
        SynthesisError: the judge is on and ANTHROPIC_API_KEY is not set.
        DataError: the persona data has errors.
    """
    summary = validate_personas(config, list(personas) if personas else None)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    setup = EvalSetup.build(config, summary)
    if not setup.contracts:
        raise EvaluationError(f"no personas with a contract in {config.personas_dir} to evaluate")
    if not summary.topic_split.heldout:  # conflict questions alone are too few to judge a voice
        raise EvaluationError(
            "no held-out debate prompts: evaluation answers topics that were never trained on, "
            f"and {config.topics_file} has too few topic groups to hold any out; add topics "
            "(three groups or more)"
        )
    judge_engine = _judge_engine(config, settings) if _use_judge(config, judge) else None
    resolved, skipped = resolve_variants(config, setup, variants, explicit=variants is not None)
    if skipped and variants is not None:
        raise EvaluationError("; ".join(s.reason for s in skipped))
    model = LazyModel(setup, resolved)
    batches = open_eval_cache(config, resolved, use_file=cache, stats=cache_stats)
    answers = generate_answers(model, setup, resolved, batches, progress)
    report = EvalReport(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data_rev=data_rev,
        base_model=model.base_id(),
        personas=setup.slugs,
        derived={slug: blend.label() for slug, blend in setup.derived.items()},
        variants=sorted({v.variant for v in resolved}, key=setup.variant_order),
        heldout_topics=[t.id for t in setup.prompts],
        conflict_ids=[c.id for c in setup.conflicts],
        classifier_texts="train + validation texts ("
        + ", ".join(f"{s} {len(t)}" for s, t in setup.classifier_texts.items())
        + "); never test texts",
        skipped=skipped,
    )
    real_corpus_baselines(setup, report, batches)
    for variant in report.variants:
        report.metrics[variant] = measure_variant(
            model, batches, setup, [r for r in resolved if r.variant == variant], answers, progress
        )
    batches.stats.is_model_loaded = model.loaded is not None
    logger.info("%s; model %s", batches.summary(), "loaded" if model.loaded else "not loaded")
    if judge_engine is not None:
        _judge(config, setup, answers, judge_engine, report)
    folder = write_report(
        report, answers, out_dir or config.cache_dir / EVAL_DIRNAME, Guards.from_config(config)
    )
    logger.info(
        "evaluation: %d persona(s) x %d variant(s) on %d held-out prompt(s) -> %s",
        len(report.personas), len(report.variants), len(report.heldout_topics), folder,
    )  # fmt: skip
    return report, folder


def _use_judge(config: FoundryConfig, judge: bool | None) -> bool:
    return config.evaluation.judge if judge is None else judge


def _judge_engine(config: FoundryConfig, settings: Settings | None) -> Provider:
    """Claude for the judge; fails before any work when no key is set."""
    from foundry.config import load_settings

    settings = settings or load_settings()
    resolve_provider_name(config, settings, "anthropic")
    return make_provider("anthropic", config, settings)


def _judge(
    config: FoundryConfig,
    setup: EvalSetup,
    answers: list[dict[str, Any]],
    engine: Provider,
    report: EvalReport,
) -> None:
    cache = GenerationCache(config.cache_dir / JUDGE_DIRNAME / GENERATIONS_FILENAME)
    budget = Budget(config.evaluation.judge_budget_usd)
    real = [row for row in answers if row["persona"] not in setup.derived]
    for variant, verdict in judge_variants(setup, real, engine, cache, budget).items():
        if variant in report.metrics:
            report.metrics[variant].judge = verdict
    if budget.spent_usd:
        report.notes.append(f"the judge cost ${budget.spent_usd:.4f}")


def write_report(
    report: EvalReport,
    answers: list[dict[str, Any]],
    target: Path,
    guards: Guards | None = None,
) -> Path:
    """metrics.json, answers.jsonl, plots and report.md into `target`, swapped in at once."""
    with staged_dir(target.parent, prefix=f".{target.name}-") as stage:
        (stage / "metrics.json").write_text(report.model_dump_json(indent=2) + "\n")
        (stage / "answers.jsonl").write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in answers)
        )
        plots = write_plots(report, stage / "plots")
        relative = {name: f"plots/{path.name}" for name, path in plots.items()}
        (stage / "report.md").write_text(render_markdown(report, relative, guards))
        replace_dir(stage, target)
    return target
