"""Preference pairs for DPO: what the persona would say (chosen) against what it would not say.

Public entry points: `build_pairs(config, settings, ...)` turns the synthesis stage's accepted
turns into pairs by the configured strategy mix (`foundry.synthesis.preference_pairs`),
generating the generic and constitution-violation negatives it needs (cached like every
generation), and writes `data/synthetic/<slug>/pairs.jsonl`; `build_persona_pairs` is one
persona's build as the retrain flow records it. Reading and exporting pairs is
`foundry.synthesis.pair_sets`.

A persona whose synthesis ran but kept no turn on a train topic gets corpus pairs instead
(`foundry.synthesis.corpus_pairs`) with a warning, so it is not dropped from the run; only a
persona never synthesized (no `turns.jsonl`) is an error.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig, Settings
from foundry.data.framing import contract_system_prompt
from foundry.data.schemas import DebateTurn, PersonaContract, PreferencePair
from foundry.data.validation import ValidationSummary, validate_personas
from foundry.errors import raise_for_errors
from foundry.logs import get_logger
from foundry.synthesis.corpus_pairs import cross_persona_pairs
from foundry.synthesis.generation_cache import (
    GENERATIONS_FILENAME,
    CachedCall,
    GenerationCache,
    run_cached,
)
from foundry.synthesis.jobs import Budget, GenerationJob, ProgressHook, Provider, SynthesisError
from foundry.synthesis.pair_sets import read_turns, synthetic_folder
from foundry.synthesis.plan import job_key
from foundry.synthesis.preference_pairs import (
    allocate_strategies,
    cap_pairs,
    cross_persona_rejection,
    index_by_slot,
    make_pair,
)
from foundry.synthesis.prompt_templates import load_template
from foundry.synthesis.providers import make_provider, resolve_provider_name
from foundry.synthesis.turn_review import REJECTED_FILENAME
from foundry.training.datasets import PAIRS_FILENAME, TURNS_FILENAME

logger = get_logger(__name__)


class PairsSummary(BaseModel):
    provider: str
    personas: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="persona -> pairs per strategy (and `eval`)."
    )
    warnings: dict[str, str] = Field(
        default_factory=dict, description="persona -> why its pairs came from the corpora."
    )
    cost_usd: float = 0.0
    paths: dict[str, str] = Field(default_factory=dict)


def build_pairs(
    config: FoundryConfig,
    settings: Settings,
    *,
    personas: Sequence[str] | None = None,
    provider: str = "",
    budget_usd: float | None = None,
    load_base: Callable[[], Any] | None = None,
    progress: Callable[[str, int], ProgressHook] | None = None,
) -> PairsSummary:
    """Make and write each selected persona's preference pairs from its synthetic turns.

    Args:
        config: the project configuration (`synthesis.pairs`).
        settings: secrets from the environment (for `anthropic`).
        personas: slugs (default: every persona that has turns).
        provider: who writes negatives: `anthropic`, or `offline`/`local` (the base model with
            the contract as system prompt answers for `generic`).
        budget_usd: dollar cap for the negatives (default `synthesis.budget_usd`).
        load_base: loads the base model, for `local` negatives.
        progress: `progress(label, jobs)` per generation round; returns a per-job hook.

    Raises:
        SynthesisError: a persona was never synthesized (run `foundry synth` first), or the
            provider cannot be used. A persona synthesized without a usable turn gets corpus
            pairs and a warning (`PairsSummary.warnings`) instead.
        DataError: corpus pairs are needed but no other persona has a corpus to reject.
    """
    summary = validate_personas(config)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    turns = {p.slug: read_turns(config, p.slug) for p in summary.personas}
    synthesized = [s for s in turns if (synthetic_folder(config, s) / TURNS_FILENAME).is_file()]
    selected = list(personas or synthesized)
    for slug in selected:
        if slug not in synthesized:
            raise SynthesisError(
                f"persona {slug} has no synthetic turns "
                f"({synthetic_folder(config, slug) / TURNS_FILENAME} does not exist: synthesis "
                f"has not run for it); run `foundry synth --persona {slug}` first"
            )
    name = resolve_provider_name(config, settings, provider)
    engine = make_provider(
        "local" if name == "offline" else name, config, settings, load_base=load_base
    )
    mix = _usable_mix(config.synthesis.pairs.mix, engine.name)
    budget = Budget(config.synthesis.budget_usd if budget_usd is None else budget_usd)
    contracts = {p.slug: p.contract for p in summary.personas if p.contract is not None}
    caches = {
        slug: GenerationCache(synthetic_folder(config, slug) / GENERATIONS_FILENAME)
        for slug in turns
    }
    index = index_by_slot(t for rows in turns.values() for t in rows)
    result = PairsSummary(provider=engine.name)
    for slug in selected:
        if not any(t.split == "train" for t in turns[slug]):
            pairs, result.warnings[slug] = _corpus_fallback(config, summary, slug, turns[slug])
        else:
            strategies = allocate_strategies(turns[slug], mix, config.training.seed)
            negatives = _negatives(
                strategies, turns[slug], index, contracts[slug], engine, caches, budget, config,
                progress,
            )  # fmt: skip
            pairs = [
                pair
                for turn in turns[slug]
                if (pair := _turn_pair(turn, strategies[turn.key], index, negatives)) is not None
            ]
            pairs = cap_pairs(pairs, config.synthesis.pairs.max_pairs, config.training.seed)
        path = synthetic_folder(config, slug) / PAIRS_FILENAME
        write_text_atomic(path, "".join(p.model_dump_json() + "\n" for p in pairs))
        counts = Counter(p.strategy for p in pairs) | Counter(
            validation=sum(p.split == "validation" for p in pairs)
        )
        result.personas[slug], result.paths[slug] = dict(counts), str(path)
        logger.info(
            "persona %s: %d preference pairs %s -> %s", slug, len(pairs), dict(counts), path
        )
    result.cost_usd = round(budget.spent_usd, 6)
    return result


def build_persona_pairs(
    config: FoundryConfig,
    settings: Settings,
    slug: str,
    *,
    provider: str = "",
    load_base: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """One persona's pairs from its turns (other personas' turns as they are now): what the
    retrain flow records of them (pairs per strategy, cost, seconds, and the warning when they
    came from the corpora)."""
    started = time.perf_counter()
    summary = build_pairs(config, settings, personas=[slug], provider=provider, load_base=load_base)
    return {
        "pairs": summary.personas.get(slug, {}),
        "cost_usd": summary.cost_usd,
        "seconds": round(time.perf_counter() - started, 2),
        "warning": summary.warnings.get(slug, ""),
    }


def _corpus_fallback(
    config: FoundryConfig, summary: ValidationSummary, slug: str, turns: list[DebateTurn]
) -> tuple[list[PreferencePair], str]:
    """Corpus pairs for a persona synthesized without a usable turn, and the warning saying so."""
    pairs = cross_persona_pairs(
        summary, slug, config.synthesis.pairs.max_pairs, config.training.seed
    )
    warning = _fallback_warning(config, slug, turns, len(pairs))
    logger.warning("%s", warning)
    return pairs, warning


def _fallback_warning(config: FoundryConfig, slug: str, turns: list[DebateTurn], pairs: int) -> str:
    """Why a synthesized persona got corpus pairs, and which settings bring its turns back."""
    folder = synthetic_folder(config, slug)
    kept = (
        f"kept {len(turns)} turn(s), none on a train topic"
        if turns
        else f"kept no turns ({folder / TURNS_FILENAME} is empty)"
    )
    return (
        f"persona {slug}: synthesis {kept}; the reasons are in {folder / REJECTED_FILENAME}. "
        f"Made {pairs} corpus pairs instead (its real texts chosen over other personas' on the "
        "same topic). To pair synthetic turns, raise `synthesis.filters.min_kept_turns` or lower "
        f"`synthesis.filters.min_attribution`, then rerun `foundry synth --persona {slug}`"
    )


def _usable_mix(mix: dict[str, float], provider: str) -> dict[str, float]:
    if provider == "anthropic" or not mix.get("constitution_violation"):
        return dict(mix)
    logger.warning(
        "pairs: `constitution_violation` needs the anthropic provider (have %s); its share goes "
        "to the other strategies; drop it from `synthesis.pairs.mix` to silence this",
        provider,
    )
    rest = {k: v for k, v in mix.items() if k != "constitution_violation" and v > 0}
    return rest or {"generic": 1.0}


def _negatives(
    strategies: dict[str, str],
    turns: list[DebateTurn],
    index: dict[tuple[str, str], list[DebateTurn]],
    contract: PersonaContract,
    engine: Provider,
    caches: dict[str, GenerationCache],
    budget: Budget,
    config: FoundryConfig,
    progress: Callable[[str, int], ProgressHook] | None,
) -> dict[str, tuple[str, str]]:
    """turn key -> (rejected text, its generation key) for the turns that need a written negative:
    generic and violation turns, and cross-persona turns no other persona has a counterpart for.
    """
    template = load_template(config.synthesis.template)
    calls: dict[str, CachedCall] = {}
    for turn in turns:
        strategy = strategies[turn.key]
        if strategy == "cross_persona" and cross_persona_rejection(turn, index) is not None:
            continue
        if strategy == "constitution_violation" and contract.constitution:
            principle = contract.constitution[int(turn.key, 16) % len(contract.constitution)]
            user = template.violation.format(
                name=contract.name, principle=principle, text=turn.text
            )
            system, kind = template.generic_system, "violation"
        elif engine.name == "anthropic":
            system, user, kind = template.generic_system, turn.prompt, "generic"
        else:  # the prompt-only baseline: base model, contract as system prompt
            system, user, kind = contract_system_prompt(contract), turn.prompt, "generic"
        key = job_key(
            engine.name, engine.model, f"{template.name}:{kind}", system, user, config.synthesis
        )
        job = GenerationJob(
            key,
            system,
            user,
            config.synthesis.max_tokens,
            config.synthesis.temperature,
            turn.persona,
        )
        calls[turn.key] = CachedCall(
            turn.persona, job, {"kind": kind, "for_key": turn.key, "strategy": strategy}
        )
    texts = run_cached(
        list(calls.values()), engine, caches, budget, progress, f"{contract.slug} negatives"
    )
    return {
        turn_key: (texts[call.job.key], call.job.key)
        for turn_key, call in calls.items()
        if call.job.key in texts
    }


def _turn_pair(
    turn: DebateTurn,
    strategy: str,
    index: dict[tuple[str, str], list[DebateTurn]],
    negatives: dict[str, tuple[str, str]],
) -> PreferencePair | None:
    """The turn's pair by its strategy; cross-persona without a counterpart becomes generic."""
    if strategy == "cross_persona":
        other = cross_persona_rejection(turn, index)
        if other is not None:
            provenance = {"rejected_key": other.key, "rejected_persona": other.persona}
            pair = make_pair(turn, other.text, "cross_persona", provenance)
            if pair is not None:
                return pair
        strategy = "generic"
    if turn.key not in negatives:
        return None
    text, key = negatives[turn.key]
    return make_pair(turn, text, strategy, {"rejected_key": key})
