"""The constitution pass: a critique of each turn against the persona's principles, then a
revision that fixes what the critique found. Both versions are kept on the turn (`draft`,
`critique`, `text`), and both calls are cached like every other generation.

Only the `anthropic` provider can critique; with another provider the pass is skipped with one
warning. Personas without a constitution are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from foundry.data.framing import persona_system_prompt
from foundry.data.schemas import DebateTurn, PersonaContract
from foundry.logs import get_logger
from foundry.synthesis.config import SynthesisConfig
from foundry.synthesis.generation_cache import CachedCall, GenerationCache, run_cached
from foundry.synthesis.jobs import Budget, GenerationJob, ProgressHook, Provider
from foundry.synthesis.plan import job_key
from foundry.synthesis.prompt_templates import PromptTemplate

if TYPE_CHECKING:
    from foundry.data.validation import ValidationSummary

logger = get_logger(__name__)


def critique_and_revise(
    turns: dict[str, list[DebateTurn]],
    summary: ValidationSummary,
    template: PromptTemplate,
    engine: Provider,
    caches: dict[str, GenerationCache],
    budget: Budget,
    config: SynthesisConfig,
    progress: Callable[[str, int], ProgressHook] | None = None,
) -> dict[str, list[DebateTurn]]:
    """Each turn revised against its persona's constitution (turns whose calls failed or did not
    fit the budget keep their draft)."""
    if engine.name != "anthropic":
        logger.warning(
            "constitution pass skipped: it needs the anthropic provider, not %s; set "
            "`synthesis.constitution_pass: false` to silence this",
            engine.name,
        )
        return turns
    contracts = {p.slug: p.contract for p in summary.personas if p.contract is not None}
    todo = [t for rows in turns.values() for t in rows if contracts[t.persona].constitution]

    def call(kind: str, turn: DebateTurn, user: str) -> CachedCall:
        system = template.system.format(persona=persona_system_prompt(contracts[turn.persona]))
        key = job_key(engine.name, engine.model, f"{template.name}:{kind}", system, user, config)
        job = GenerationJob(key, system, user, config.max_tokens, config.temperature, turn.persona)
        return CachedCall(turn.persona, job, {"kind": kind, "for_key": turn.key})

    critique_calls = {
        t.key: call("critique", t, _critique_prompt(template, contracts[t.persona], t))
        for t in todo
    }
    critiques = run_cached(
        list(critique_calls.values()), engine, caches, budget, progress, "critiques"
    )
    revise_calls = {
        t.key: call(
            "revision", t, template.revise.format(critique=critiques[c.job.key], text=t.text)
        )
        for t in todo
        if (c := critique_calls[t.key]).job.key in critiques
    }
    revisions = run_cached(
        list(revise_calls.values()), engine, caches, budget, progress, "revisions"
    )
    revised = {}
    for key, c in revise_calls.items():
        if c.job.key in revisions:
            revised[key] = (revisions[c.job.key], critiques[critique_calls[key].job.key])
    return {
        slug: [_revised(t, *revised[t.key]) if t.key in revised else t for t in rows]
        for slug, rows in turns.items()
    }


def _critique_prompt(template: PromptTemplate, contract: PersonaContract, turn: DebateTurn) -> str:
    principles = "\n".join(f"- {c}" for c in contract.constitution)
    return template.critique.format(name=contract.name, constitution=principles, text=turn.text)


def _revised(turn: DebateTurn, text: str, critique: str) -> DebateTurn:
    return turn.model_copy(update={"text": text, "draft": turn.text, "critique": critique})
