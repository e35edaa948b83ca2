"""Synthetic debate turns: plan, generate (cached, budgeted), critique, filter, write.

Public entry points: `synthesize(config, settings, ...)` returns a `SynthesisSummary`, and
`synthesize_persona(config, settings, slug, ...)` is one persona's run as the retrain flow
records it (it fails when requests failed or were left for the budget).

Every generation is appended to `data/synthetic/<slug>/generations.jsonl` the moment it exists
(`foundry.synthesis.generation_cache`), so a rerun pays only for what is missing and a killed run
loses nothing already paid for. Each run then rewrites, atomically, the persona's `turns.jsonl`
(turns that passed the quality filters) and `rejected.jsonl` (the rest, each with its reasons):
nothing is silently dropped.

Turns come in two phases: claims, clarifications, concessions and reframes first, then challenges,
which answer the passage of another persona's real writing that best fits the topic. A persona's
turns depend only on its own inputs, so personas are synthesized (and cached) one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from foundry.config import FoundryConfig, Settings
from foundry.data.retrieval import PassageIndex
from foundry.data.schemas import DebateTurn
from foundry.data.validation import validate_personas
from foundry.errors import raise_for_errors
from foundry.logs import get_logger
from foundry.synthesis.attribution_bars import AttributionBar
from foundry.synthesis.belief_paths import load_persona_beliefs
from foundry.synthesis.constitution import critique_and_revise
from foundry.synthesis.generation_cache import GenerationCache
from foundry.synthesis.jobs import (
    Budget,
    GenerationJob,
    GenerationResult,
    ProgressHook,
    Provider,
    RequestsFailedError,
    RunReport,
    SynthesisError,
)
from foundry.synthesis.plan import TurnRequest, plan_slots
from foundry.synthesis.prompt_templates import load_template
from foundry.synthesis.providers import make_provider, resolve_provider_name
from foundry.synthesis.synthesis_scope import select_personas, synthesis_topics
from foundry.synthesis.turn_requests import (
    collect_turns,
    persona_request,
    synthesis_cache,
    turn_row,
)
from foundry.synthesis.turn_review import review_turns
from foundry.training.datasets import SYNTHETIC_DIRNAME

logger = get_logger(__name__)

BATCH_STATE_FILENAME = "batches.json"
PhaseProgress = Callable[[str, int], ProgressHook]


class PersonaSynthesis(BaseModel):
    planned: int = 0
    reused: int = 0
    generated: int = 0
    failed: int = 0
    skipped_for_budget: int = 0
    accepted: int = 0
    rejected: dict[str, int] = Field(default_factory=dict, description="Count per reason.")
    kept_by_floor: int = Field(
        0, description="Accepted turns the attribution filter rejected, kept to reach the floor."
    )
    attribution_bar: AttributionBar | None = Field(
        None, description="The persona's attribution bar and how its real texts set it."
    )
    notes: list[str] = Field(default_factory=list, description="What the review did, and why.")
    cost_usd: float = 0.0


class SynthesisSummary(BaseModel):
    provider: str
    model: str
    mode: str
    budget_usd: float
    cost_usd: float = 0.0
    retries: int = 0
    stopped_by_budget: bool = False
    duration_s: float = 0.0
    personas: dict[str, PersonaSynthesis] = Field(default_factory=dict)
    failures: list[str] = Field(default_factory=list, description="First few failure reasons.")


def synthesize(
    config: FoundryConfig,
    settings: Settings,
    *,
    personas: Sequence[str] | None = None,
    count: int | None = None,
    provider: str = "",
    budget_usd: float | None = None,
    topics_path: Path | None = None,
    load_base: Callable[[], Any] | None = None,
    progress: PhaseProgress | None = None,
) -> SynthesisSummary:
    """Generate, filter and write debate turns for the selected personas.

    Args:
        config: the project configuration (`synthesis:` section).
        settings: secrets (ANTHROPIC_API_KEY, base URL) from the environment.
        personas: slugs to synthesize for (default: `personas.include`, else every trainable one).
        count: turns per persona (default `synthesis.turns_per_persona`).
        provider: `anthropic`, `offline` or `local` (default `synthesis.provider`).
        budget_usd: dollar cap for this run (default `synthesis.budget_usd`).
        topics_path: a debate prompts YAML file (default: the project's topics.yaml).
        load_base: loads the base model, for the `local` provider.
        progress: `progress(label, jobs)` at each phase; returns a hook called per finished job.

    Returns:
        Counts per persona (planned, reused from cache, generated, accepted, rejected by reason,
        kept by the floor), its attribution bar and notes, cost, retries, and whether the budget
        stopped the run.

    Raises:
        SynthesisError: no key for anthropic, a rejected key, a bad prompts file, a persona with
            too few corpus items, or a budget of zero; nothing is written in those cases.
        DataError: the persona data has errors.
    """
    started = time.perf_counter()
    summary = validate_personas(config)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    selected = select_personas(summary, personas or config.personas.include, config)
    topic_split = synthesis_topics(config, summary, topics_path)
    budget = Budget(config.synthesis.budget_usd if budget_usd is None else budget_usd)
    template = load_template(config.synthesis.template)
    name = resolve_provider_name(config, settings, provider)
    state = config.data_dir / SYNTHETIC_DIRNAME / BATCH_STATE_FILENAME
    engine = make_provider(name, config, settings, load_base=load_base, state_path=state)
    per_persona = count or config.synthesis.turns_per_persona
    slots = plan_slots(topic_split, config.synthesis.moves, per_persona, config.training.seed)
    caches = {slug: synthesis_cache(config, slug) for slug in selected}
    graphs = {slug: load_persona_beliefs(config.persona_dir(slug)) for slug in selected}
    indexes = {
        p.slug: PassageIndex([i for i in p.items if i.split == "train"]) for p in summary.personas
    }
    logger.info(
        "synthesis: %d persona(s) x %d slot(s) with %s (%s), budget $%.2f",
        len(selected), len(slots), name, engine.model, budget.limit_usd,
    )  # fmt: skip
    result = SynthesisSummary(
        provider=name, model=engine.model, mode=_mode(name, config), budget_usd=budget.limit_usd
    )
    turns: dict[str, list[DebateTurn]] = {slug: [] for slug in selected}
    for phase in ("opening", "challenge"):
        phase_slots = [s for s in slots if (s.move == "challenge") == (phase == "challenge")]
        requests = [
            persona_request(config, summary, slug, slot, indexes, template, engine, graphs[slug])
            for slug in selected
            for slot in phase_slots
        ]
        report = _generate_missing(engine, requests, caches, budget, result, progress, phase)
        collect_turns(requests, caches, turns)
        if report.stopped_by_budget:
            break
    if config.synthesis.constitution_pass:
        turns = critique_and_revise(
            turns, summary, template, engine, caches, budget, config.synthesis, progress
        )
    for slug, review in review_turns(config, summary, turns).items():
        counts = result.personas[slug]
        counts.accepted, counts.rejected = review.kept, review.rejected
        counts.kept_by_floor, counts.attribution_bar = review.kept_by_floor, review.attribution_bar
        counts.notes = review.notes
    result.cost_usd = round(budget.spent_usd, 6)
    result.duration_s = round(time.perf_counter() - started, 2)
    _log_done(result)
    return result


def synthesize_persona(
    config: FoundryConfig,
    settings: Settings,
    slug: str,
    *,
    provider: str = "",
    budget_usd: float | None = None,
    load_base: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """One persona's turns (both phases, review, files): what the retrain flow records of them.

    Raises:
        SynthesisError: requests were left for the budget (not retried: a retry would spend
            another share), or any error of `synthesize`.
        RequestsFailedError: requests failed, so the persona's training never runs on partial
            data.
    """
    started = time.perf_counter()
    summary = synthesize(
        config, settings, personas=[slug], provider=provider, budget_usd=budget_usd,
        load_base=load_base,
    )  # fmt: skip
    counts = summary.personas[slug]
    kept = "the turns made are kept and a rerun asks only for the missing ones"
    if counts.skipped_for_budget:
        raise SynthesisError(
            f"persona {slug}: {counts.skipped_for_budget} request(s) were left for the budget "
            f"(`synthesis.budget_usd`, shared by the personas of a run); {kept}"
        )
    if counts.failed:
        raise RequestsFailedError(
            f"persona {slug}: {counts.failed} request(s) failed "
            f"({'; '.join(summary.failures) or 'no details'}); {kept}"
        )
    return {
        **counts.model_dump(mode="json"),
        "provider": summary.provider,
        "model": summary.model,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _generate_missing(
    engine: Provider,
    requests: list[TurnRequest],
    caches: dict[str, GenerationCache],
    budget: Budget,
    result: SynthesisSummary,
    progress: PhaseProgress | None,
    phase: str,
) -> RunReport:
    """Generate what the caches lack; each result is saved the moment it arrives."""
    by_key = {r.job.key: r for r in requests}
    missing = [r.job for r in requests if r.job.key not in caches[r.persona]]
    for request in requests:
        counts = result.personas.setdefault(request.persona, PersonaSynthesis())
        counts.planned += 1
        counts.reused += request.job.key in caches[request.persona]

    def save(job: GenerationJob, generated: GenerationResult) -> None:
        request = by_key[job.key]
        caches[request.persona].append(turn_row(request, generated))
        counts = result.personas[request.persona]
        counts.generated += 1
        counts.cost_usd = round(counts.cost_usd + generated.cost_usd, 6)

    hook = progress(f"{phase} turns", len(missing)) if progress else None
    report = engine.generate(missing, save, budget, hook)
    for key, reason in report.failed.items():
        result.personas[by_key[key].persona].failed += 1
        if len(result.failures) < 5:
            result.failures.append(f"{by_key[key].persona}: {reason}")
    for job in missing:
        persona = by_key[job.key].persona
        if job.key not in caches[persona] and job.key not in report.failed:
            result.personas[persona].skipped_for_budget += 1
    result.retries += report.retries
    result.stopped_by_budget = result.stopped_by_budget or report.stopped_by_budget
    if report.failed:
        logger.warning("%s turns: %d request(s) failed", phase, len(report.failed))
    return report


def _mode(name: str, config: FoundryConfig) -> str:
    return config.synthesis.mode if name == "anthropic" else name


def _log_done(result: SynthesisSummary) -> None:
    logger.info(
        "synthesis done in %.1f s: %d accepted, %d rejected, %d failed, %d retries, $%.4f spent%s",
        result.duration_s,
        sum(p.accepted for p in result.personas.values()),
        sum(sum(p.rejected.values()) for p in result.personas.values()),
        sum(p.failed for p in result.personas.values()),
        result.retries,
        result.cost_usd,
        " (stopped at the budget)" if result.stopped_by_budget else "",
    )
