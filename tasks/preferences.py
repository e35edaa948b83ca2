"""Preference pairs for DPO: what the persona would say (chosen) against what it would not say.

Public entry points: `build_pairs(config, settings, ...)` turns the synthesis stage's accepted turns
into pairs by the configured strategy mix (`foundry.synthesis.preference_pairs`), generating the
generic and constitution-violation negatives it needs (cached like every generation), and writes
`data/synthetic/<slug>/pairs.jsonl`; `pairs_persona_task` wraps it for the retrain flow;
`export_pairs` writes TRL or Together files. `load_pairs(config, slug)` reads pairs.jsonl for
training, or, when synthesis has not run, falls back to `cross_persona_pairs(summary, slug)`: pairs
from the corpora alone.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prefect import task
from pydantic import BaseModel, Field, ValidationError

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig, Settings
from foundry.data.framing import contract_system_prompt
from foundry.data.schemas import DebateTurn, PersonaContract, PreferencePair
from foundry.data.validation import validate_personas
from foundry.errors import raise_for_errors
from foundry.logs import get_logger
from foundry.slugs import check_slug
from foundry.synthesis.corpus_pairs import cross_persona_pairs
from foundry.synthesis.generation_cache import (
    GENERATIONS_FILENAME,
    CachedCall,
    GenerationCache,
    run_cached,
)
from foundry.synthesis.jobs import Budget, GenerationJob, ProgressHook, Provider, SynthesisError
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
from foundry.training.datasets import (
    PAIRS_FILENAME,
    SYNTHETIC_DIRNAME,
    TURNS_FILENAME,
    TrainingDataError,
    read_jsonl_records,
    to_together,
    to_trl,
)

logger = get_logger(__name__)

__all__ = [
    "build_pairs",
    "cross_persona_pairs",
    "export_pairs",
    "load_pairs",
    "read_turns",
]


def load_pairs(config: FoundryConfig, slug: str) -> list[PreferencePair]:
    """The persona's preference pairs: `data/synthetic/<slug>/pairs.jsonl`, else cross-persona.

    Raises:
        TrainingDataError: a line of pairs.jsonl is not a valid `PreferencePair` for `slug`
            (the message names the file and the line).
        DataError: the corpora have errors (cross-persona fallback).
    """
    path = config.data_dir / SYNTHETIC_DIRNAME / slug / PAIRS_FILENAME
    if not path.is_file():
        summary = validate_personas(config)
        raise_for_errors(summary.problems, f"data in {config.data_dir}")
        pairs = cross_persona_pairs(summary, slug, seed=config.training.seed)
        logger.info("persona %s: %d cross-persona preference pairs", slug, len(pairs))
        return pairs
    pairs = []
    for number, row in read_jsonl_records(path):
        try:
            pair = PreferencePair.model_validate(row)
        except ValidationError as exc:
            raise TrainingDataError(
                f"{path}, line {number}: not a valid preference pair ({_fields(exc)}); fix or "
                "delete the line"
            ) from None
        if pair.persona != slug:
            raise TrainingDataError(
                f"{path}, line {number}: pair is for persona {pair.persona!r}, not {slug!r}; "
                f"move it to data/{SYNTHETIC_DIRNAME}/{pair.persona}/{PAIRS_FILENAME}"
            )
        pairs.append(pair)
    logger.info("persona %s: %d preference pairs from %s", slug, len(pairs), path)
    return pairs


class PairsSummary(BaseModel):
    provider: str
    personas: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="persona -> pairs per strategy (and `eval`)."
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
        SynthesisError: a persona has no synthetic turns (run `foundry synth` first), or the
            provider cannot be used.
    """
    summary = validate_personas(config)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    turns = {p.slug: read_turns(config, p.slug) for p in summary.personas}
    selected = list(personas or [s for s, rows in turns.items() if rows])
    for slug in selected:
        if not turns.get(slug):
            raise SynthesisError(
                f"persona {slug} has no synthetic turns in {_folder(config, slug) / TURNS_FILENAME}"
                f"; run `foundry synth --persona {slug}` first"
            )
    name = resolve_provider_name(config, settings, provider)
    engine = make_provider(
        "local" if name == "offline" else name, config, settings, load_base=load_base
    )
    mix = _usable_mix(config.synthesis.pairs.mix, engine.name)
    budget = Budget(config.synthesis.budget_usd if budget_usd is None else budget_usd)
    contracts = {p.slug: p.contract for p in summary.personas if p.contract is not None}
    caches = {slug: GenerationCache(_folder(config, slug) / GENERATIONS_FILENAME) for slug in turns}
    index = index_by_slot(t for rows in turns.values() for t in rows)
    result = PairsSummary(provider=engine.name)
    for slug in selected:
        strategies = allocate_strategies(turns[slug], mix, config.training.seed)
        negatives = _negatives(
            strategies,
            turns[slug],
            index,
            contracts[slug],
            engine,
            caches,
            budget,
            config,
            progress,
        )
        pairs = [
            pair
            for turn in turns[slug]
            if (pair := _turn_pair(turn, strategies[turn.key], index, negatives)) is not None
        ]
        pairs = cap_pairs(pairs, config.synthesis.pairs.max_pairs, config.training.seed)
        path = _folder(config, slug) / PAIRS_FILENAME
        write_text_atomic(path, "".join(p.model_dump_json() + "\n" for p in pairs))
        counts = Counter(p.strategy for p in pairs) | Counter(
            eval=sum(p.split == "eval" for p in pairs)
        )
        result.personas[slug], result.paths[slug] = dict(counts), str(path)
        logger.info(
            "persona %s: %d preference pairs %s -> %s", slug, len(pairs), dict(counts), path
        )
    result.cost_usd = round(budget.spent_usd, 6)
    return result


def read_turns(config: FoundryConfig, slug: str) -> list[DebateTurn]:
    """The persona's accepted synthetic turns (`turns.jsonl`); empty when there is none."""
    path = _folder(config, slug) / TURNS_FILENAME
    if not path.is_file():
        return []
    turns = []
    for number, row in read_jsonl_records(path):
        try:
            turns.append(DebateTurn.model_validate(row))
        except ValidationError as exc:
            raise TrainingDataError(
                f"{path}, line {number}: not a valid debate turn ({_fields(exc)}); this file is "
                "written by `foundry synth`: rerun it, or fix or delete the line"
            ) from None
    return turns


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


def export_pairs(config: FoundryConfig, slugs: Sequence[str], fmt: str, out: Path) -> int:
    """Write the personas' pairs as one JSONL file in `fmt` (`trl` or `together`); return rows."""
    convert = {"trl": to_trl, "together": to_together}[fmt]
    rows = [
        json.dumps(convert(p), ensure_ascii=False)
        for slug in slugs
        for p in load_pairs(config, slug)
    ]
    write_text_atomic(out, "".join(row + "\n" for row in rows))
    return len(rows)


def _folder(config: FoundryConfig, slug: str) -> Path:
    return config.data_dir / SYNTHETIC_DIRNAME / check_slug(slug)


def _fields(exc: ValidationError) -> str:
    return "; ".join(
        f"`{'.'.join(map(str, e['loc'])) or 'line'}`: {e['msg']}" for e in exc.errors()
    )


@task(name="preference-pairs-persona", task_run_name="pairs[{slug}]")
def pairs_persona_task(config_path: str | None, slug: str, provider: str = "") -> dict[str, Any]:
    """One persona's preference pairs from its turns (other personas' turns as they are now),
    in the flow's process pool when it has one: the generic negatives load the base model."""
    import os

    from prefect.logging import get_run_logger

    from foundry.training.pool import run_in_pool

    return run_in_pool(
        persona_pairs, config_path, slug, provider, log=get_run_logger(),
        threads=os.cpu_count() or 1,
    )  # fmt: skip


def persona_pairs(config_path: str | None, slug: str, provider: str = "") -> dict[str, Any]:
    """Build one persona's pairs; what the flow records of them."""
    from foundry.config import load_config, load_settings
    from tasks.train import ensure_base

    config = load_config(Path(config_path) if config_path else None)
    started = time.perf_counter()
    summary = build_pairs(
        config, load_settings(), personas=[slug], provider=provider,
        load_base=lambda: ensure_base(config),
    )  # fmt: skip
    return {
        "pairs": summary.personas.get(slug, {}),
        "cost_usd": summary.cost_usd,
        "seconds": round(time.perf_counter() - started, 2),
    }
