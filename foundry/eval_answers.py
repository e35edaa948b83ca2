"""What evaluation works on: the personas, the held-out prompts and corpus, the variants, and
the variants' answers.

`EvalSetup.build(config, summary)` gathers the selected personas' contracts, their real train and
held-out texts and the held-out debate prompts; `resolve_variants` maps (persona, variant) to an
adapter and system prompt, noting what is missing; `generate_answers` has every variant of every
persona answer every held-out prompt, all in mixed-adapter batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from foundry.config import FoundryConfig
from foundry.errors import FoundryError
from foundry.eval_schema import Skipped
from foundry.framing import debate_prompt
from foundry.schemas import DebateTopic, PersonaContract
from foundry.training_data import item_prompts
from foundry.variants import VARIANTS, ResolvedVariant, resolve_variant

if TYPE_CHECKING:
    from tasks.corpus import ValidationSummary


@dataclass
class EvalSetup:
    config: FoundryConfig
    contracts: dict[str, PersonaContract]
    prompts: list[DebateTopic]
    train_texts: dict[str, list[str]]
    heldout: dict[str, list[tuple[str, str]]] = field(
        default_factory=dict, metadata={"doc": "persona -> (debate prompt, real held-out text)"}
    )
    cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: FoundryConfig, summary: ValidationSummary) -> EvalSetup:
        personas = [p for p in summary.personas if p.contract is not None]
        limit = config.evaluation.prompts_per_persona or None
        setup = cls(
            config=config,
            contracts={p.slug: p.contract for p in personas},  # type: ignore[misc]
            prompts=summary.topic_split.heldout[:limit],
            train_texts={p.slug: [i.text for i in p.items if i.split == "train"] for p in personas},
        )
        for persona in personas:
            held = [i for i in persona.items if i.split == "eval"][
                : config.evaluation.heldout_items
            ]
            prompts = item_prompts(held, summary.topic_split.framing)
            setup.heldout[persona.slug] = [(prompts[i.id], i.text) for i in held]
        return setup

    @property
    def slugs(self) -> list[str]:
        return list(self.contracts)

    @staticmethod
    def variant_order(name: str) -> int:
        return VARIANTS.index(name) if name in VARIANTS else len(VARIANTS)

    def load_model(self, resolved: Sequence[ResolvedVariant]) -> tuple[Any, Any, str]:
        """(model with every needed adapter attached, tokenizer, base model id)."""
        from foundry.adapter_loading import attach_adapters, check_adapters
        from foundry.base_model import load_base

        adapters = {r.adapter: r.path for r in resolved if r.path is not None}
        check_adapters(adapters)
        base = load_base(self.config)
        base_id = f"tiny:{base.path.name}" if base.is_tiny and base.path else base.name
        return attach_adapters(base.model, adapters), base.tokenizer, base_id


def resolve_variants(
    config: FoundryConfig, setup: EvalSetup, variants: Sequence[str] | None, explicit: bool
) -> tuple[list[ResolvedVariant], list[Skipped]]:
    """Every (persona, variant) that can run, and the ones that cannot with the reason."""
    names = list(variants) if variants is not None else list(config.evaluation.variants)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise FoundryError(f"unknown variant(s) {', '.join(unknown)}; use {', '.join(VARIANTS)}")
    resolved, skipped = [], []
    for variant in names:
        for slug, contract in setup.contracts.items():
            try:
                resolved.append(resolve_variant(config, contract, variant))  # type: ignore[arg-type]
            except FoundryError as exc:
                skipped.append(Skipped(persona=slug, variant=variant, reason=str(exc)))
    return resolved, skipped


def generate_answers(
    model: Any,
    tokenizer: Any,
    setup: EvalSetup,
    resolved: Sequence[ResolvedVariant],
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> list[dict[str, Any]]:
    """Rows {variant, persona, topic_id, prompt, answer}: each variant of each persona on each
    held-out prompt, in mixed-adapter batches."""
    from foundry.generation import GenerationParams, GenerationRequest, generate

    settings = setup.config.evaluation
    params = GenerationParams(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        seed=settings.seed,
        batch_size=settings.batch_size,
    )
    plan = [(r, topic) for r in resolved for topic in setup.prompts]
    hook = progress("answers", len(plan)) if progress else None
    rows = []
    for start in range(0, len(plan), params.batch_size):
        chunk = plan[start : start + params.batch_size]
        requests = [
            GenerationRequest(prompt=debate_prompt(t), adapter=r.adapter, system=r.system)
            for r, t in chunk
        ]
        texts = generate(model, tokenizer, requests, params)
        for (r, topic), request, text in zip(chunk, requests, texts, strict=True):
            rows.append(
                {
                    "variant": r.variant,
                    "persona": r.persona,
                    "topic_id": topic.id,
                    "prompt": request.prompt,
                    "answer": text,
                }
            )
        if hook:
            hook(len(chunk))
    return rows
