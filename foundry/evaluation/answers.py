"""What evaluation works on: the personas, the held-out prompts and corpus, the variants, and
the variants' answers.

`EvalSetup.build(config, summary)` gathers the selected personas' contracts, their real train and
held-out texts and the held-out debate prompts (the test topics, then one question per conflict
among the personas: `foundry.evaluation.conflicts`); `resolve_variants` maps (persona, variant)
to an adapter and system prompt, noting what is missing; `LazyModel` loads the model with every
adapter on first use only; `generate_answers` has every variant of every persona answer every
held-out prompt, in batches of one (persona, variant) each, so a persona's new adapter redoes
only its own batches (`foundry.evaluation.cache`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from foundry.config import FoundryConfig
from foundry.data.framing import TopicSplit, debate_prompt, item_prompts
from foundry.data.schemas import Conflict, DebateTopic, DerivedFrom, PersonaContract, Position
from foundry.data.stance import position_key, trained_positions
from foundry.errors import FoundryError
from foundry.evaluation.cache import BatchJob, EvalCache
from foundry.evaluation.conflicts import conflict_topic
from foundry.evaluation.schema import Skipped
from foundry.steering.variants import (
    VARIANTS,
    ResolvedVariant,
    register_variant_vectors,
    resolve_variant,
)
from foundry.training.datasets import (
    SYNTHETIC_DIRNAME,
    TURNS_FILENAME,
    read_synthetic_turns,
    taught_position_rows,
)

if TYPE_CHECKING:
    from foundry.data.validation import PreparedPersona, ValidationSummary
    from foundry.training.generation import GenerationParams

LoadModel = Callable[[], tuple[Any, Any]]


@dataclass
class EvalSetup:
    config: FoundryConfig
    contracts: dict[str, PersonaContract]
    prompts: list[DebateTopic]
    train_texts: dict[str, list[str]] = field(
        metadata={"doc": "persona -> every text its adapters learned to say: the copy guard's"}
    )
    heldout: dict[str, list[tuple[str, str]]] = field(
        default_factory=dict, metadata={"doc": "persona -> (debate prompt, real test text)"}
    )
    classifier_texts: dict[str, list[str]] = field(
        default_factory=dict, metadata={"doc": "persona -> train + validation texts"}
    )
    conflicts: list[Conflict] = field(
        default_factory=list, metadata={"doc": "conflicts whose questions are among the prompts"}
    )
    trained_positions: dict[str, set[str]] = field(
        default_factory=dict, metadata={"doc": "persona -> position keys the position rows teach"}
    )
    derived: dict[str, DerivedFrom] = field(
        default_factory=dict,
        metadata={"doc": "derived persona -> its blend: it answers every prompt, but has no texts "
                  "of its own, so it takes no part in what compares the personas' own data"},
    )  # fmt: skip
    cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: FoundryConfig, summary: ValidationSummary) -> EvalSetup:
        personas = [p for p in summary.personas if p.contract is not None]
        derived = [p for p in summary.derived if p.contract is not None]
        limit = config.evaluation.prompts_per_persona or None
        slugs = {p.slug for p in personas}
        conflicts = [c for c in summary.conflicts if {c.persona_a, c.persona_b} <= slugs]
        conflicts = conflicts[: config.evaluation.max_conflicts or None]
        setup = cls(
            config=config,
            contracts={p.slug: p.contract for p in [*personas, *derived]},  # type: ignore[misc]
            prompts=summary.topic_split.heldout[:limit] + [conflict_topic(c) for c in conflicts],
            conflicts=conflicts,
            train_texts={p.slug: trained_texts(config, p, summary.topic_split) for p in personas},
            classifier_texts={
                p.slug: [i.text for i in p.items if i.split in ("train", "validation")]
                for p in personas
            },
        )
        for persona in derived:  # its copy guard: what its sources' adapters learned to say
            blend = persona.contract.derived_from  # type: ignore[union-attr]
            setup.derived[persona.slug] = blend
            setup.train_texts[persona.slug] = [
                t for s in blend.sources if s.weight > 0 for t in setup.train_texts.get(s.slug, [])
            ]
        for persona in personas:
            if config.training.position_rows:
                setup.trained_positions[persona.slug] = trained_positions(
                    persona.contract,  # type: ignore[arg-type]
                    summary.topic_split,
                )
            held = [i for i in persona.items if i.split == "test"][
                : config.evaluation.heldout_items
            ]
            prompts = item_prompts(held, summary.topic_split.framing)
            setup.heldout[persona.slug] = [(prompts[i.id], i.text) for i in held]
        return setup

    @property
    def slugs(self) -> list[str]:
        """The personas with texts of their own: the ones attribution, the matrices and the
        homogeneity compare (a derived persona present changes none of their figures)."""
        return [slug for slug in self.contracts if slug not in self.derived]

    @property
    def speakers(self) -> list[str]:
        """Every persona that answers the prompts: the real ones, then the derived ones."""
        return list(self.contracts)

    def judged_positions(self, slug: str) -> list[tuple[str, Position]]:
        """(key, position) of the persona's positions that training never stated: the stance and
        belief figures' items (a trained position would score its own training text)."""
        trained = self.trained_positions.get(slug, set())
        return [
            (key, p)
            for i, p in enumerate(self.contracts[slug].positions)
            if (key := position_key(p, i)) not in trained
        ]

    @staticmethod
    def variant_order(name: str) -> int:
        return VARIANTS.index(name) if name in VARIANTS else len(VARIANTS)

    def load_model(self, resolved: Sequence[ResolvedVariant]) -> tuple[Any, Any, str]:
        """(model with every needed adapter attached, tokenizer, base model id)."""
        from foundry.training.adapters import attach_adapters, check_adapters
        from foundry.training.base_model import load_base

        adapters = {r.adapter: r.path for r in resolved if r.path is not None}
        check_adapters(adapters)
        base = load_base(self.config)
        model = attach_adapters(base.model, adapters)
        register_variant_vectors(model, resolved, base.identity)
        return model, base.tokenizer, base.identity


def trained_texts(config: FoundryConfig, persona: PreparedPersona, split: TopicSplit) -> list[str]:
    """Every text the persona's SFT trained it to say: its train corpus items, its synthetic
    turns (train and validation) and its position rows, so that the memorisation guard catches
    recitation of any of them, not only of the corpus."""
    texts = [i.text for i in persona.items if i.split == "train"]
    turns = config.data_dir / SYNTHETIC_DIRNAME / persona.slug / TURNS_FILENAME
    if turns.is_file():
        texts += [text for _, text, _ in read_synthetic_turns(turns)]
    texts += sorted({row.chosen for row in taught_position_rows(config, persona.contract, split)})
    return texts


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


class LazyModel:
    """The evaluated model, loaded on first use: a fully cached evaluation never loads it."""

    def __init__(self, setup: EvalSetup, resolved: Sequence[ResolvedVariant]) -> None:
        from foundry.training.adapters import check_adapters

        check_adapters({r.adapter: r.path for r in resolved if r.path is not None})
        self.setup, self.resolved = setup, list(resolved)
        self.loaded: tuple[Any, Any, str] | None = None

    def __call__(self) -> tuple[Any, Any]:
        """(model, tokenizer), loading them the first time."""
        if self.loaded is None:
            self.loaded = self.setup.load_model(self.resolved)
        return self.loaded[0], self.loaded[1]

    def base_id(self) -> str:
        """The base model id `load_model` reports, without loading when it can."""
        from foundry.training.smollm2 import smollm2_identity
        from foundry.training.tiny_cache import latest_tiny

        settings = self.setup.config.base_model
        if settings.is_smollm2:
            found = smollm2_identity(self.setup.config)
            if found is None:  # not converted yet: loading converts it
                self()
                return self.loaded[2]  # type: ignore[index]
            return found
        if not settings.is_tiny:
            return settings.name
        folder = latest_tiny(self.setup.config)
        if folder is None:  # not built yet: loading raises the error that says what to run
            self()
            return self.loaded[2]  # type: ignore[index]
        return f"tiny:{folder.name}"


def generate_answers(
    load: LoadModel,
    setup: EvalSetup,
    resolved: Sequence[ResolvedVariant],
    cache: EvalCache,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> list[dict[str, Any]]:
    """Rows {variant, persona, topic_id, prompt, answer}: each variant of each persona on each
    held-out prompt, variant by variant.

    A batch holds one (persona, variant) and is seeded from the evaluation seed and the persona,
    so its answers depend on nothing else: not on the other personas' adapters, and not on which
    batches came from the cache. A persona's variants share random draws, which makes their
    comparison less noisy.
    """
    from foundry.training.generation import GenerationRequest

    params = _answer_params(setup)
    jobs, plans = [], []
    for persona, chunk in _answer_batches(setup, resolved, params.batch_size):
        seeded = params.model_copy(update={"seed": persona_seed(params.seed, persona)})
        requests = [
            GenerationRequest(
                prompt=debate_prompt(t),
                adapter=r.adapter,
                system=r.system,
                steer=(r.steer,) if r.steer else (),
            )
            for r, t in chunk
        ]
        rows = [
            [cache.adapter_id(q.adapter), q.system, q.prompt]
            + ([cache.steer_id(q.steer)] if q.steer else [])
            for q in requests
        ]
        key = cache.key("answers", {"params": seeded.model_dump(), "rows": rows})
        jobs.append(BatchJob(key, persona, len(chunk), _generator(load, requests, seeded)))
        plans.append(chunk)
    hook = progress("answers", sum(len(c) for c in plans)) if progress else None
    texts: dict[tuple[str, str, str], str] = {}
    for chunk, answers in zip(plans, cache.run("answers", jobs, hook), strict=True):
        texts |= {(r.variant, r.persona, t.id): a for (r, t), a in zip(chunk, answers, strict=True)}
    return [
        {
            "variant": r.variant,
            "persona": r.persona,
            "topic_id": topic.id,
            "prompt": debate_prompt(topic),
            "answer": texts[(r.variant, r.persona, topic.id)],
        }
        for r in resolved
        for topic in setup.prompts
    ]


def persona_seed(seed: int, persona: str) -> int:
    """The seed of a persona's answer batches: its own, so personas do not share random draws
    (with one seed for all, every persona's base rows would sample the same answers)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{persona}".encode()).digest()[:4], "big")


def _answer_params(setup: EvalSetup) -> GenerationParams:
    from foundry.training.generation import GenerationParams

    settings = setup.config.evaluation
    return GenerationParams(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        seed=settings.seed,
        batch_size=settings.batch_size,
    )


def _answer_batches(
    setup: EvalSetup, resolved: Sequence[ResolvedVariant], batch_size: int
) -> list[tuple[str, list[tuple[ResolvedVariant, DebateTopic]]]]:
    """Each (persona, variant)'s prompts, cut into batches: one adapter and system prompt per
    batch, persona by persona (a persona's four variants mixed in one batch ran 1.6x slower on
    the CPU: padded to the longest system prompt, and decoding until the longest answer ends)."""
    batches = []
    for persona in setup.speakers:
        for variant in (r for r in resolved if r.persona == persona):
            plan = [(variant, topic) for topic in setup.prompts]
            batches += [
                (persona, plan[i : i + batch_size]) for i in range(0, len(plan), batch_size)
            ]
    return batches


def _generator(load: LoadModel, requests: list[Any], params: GenerationParams) -> Callable[[], Any]:
    """Generate one batch (`generate` seeds it once: it is never longer than the batch size)."""

    def compute() -> list[str]:
        from foundry.training.generation import generate

        model, tokenizer = load()
        return generate(model, tokenizer, requests, params)

    return compute
