"""Turn requests and their cache rows: what synthesis asks a provider for, and what it keeps.

Public entry points: `persona_request(...)` builds one persona's `TurnRequest` for a slot (its
passages retrieved for the topic, for a challenge another persona's best-fitting passage, and a
path through the persona's belief graph when it has one), `turn_row` is the cache row of a
generated turn (the text as the provider wrote it), `collect_turns` reads back the turns the
caches hold (without belief-node citations, as they are filtered and trained on), and
`synthesis_cache(config, slug)` opens a persona's `generations.jsonl`.
"""

from __future__ import annotations

from typing import Any

from foundry.config import FoundryConfig
from foundry.data.beliefs import BeliefGraph
from foundry.data.retrieval import PassageIndex
from foundry.data.schemas import DebateTurn
from foundry.data.validation import ValidationSummary
from foundry.synthesis.belief_paths import strip_node_citations
from foundry.synthesis.generation_cache import GENERATIONS_FILENAME, GenerationCache, generation_row
from foundry.synthesis.jobs import GenerationResult, Provider
from foundry.synthesis.plan import Slot, TurnRequest, choose_opponent, turn_request
from foundry.training.datasets import SYNTHETIC_DIRNAME


def synthesis_cache(config: FoundryConfig, slug: str) -> GenerationCache:
    """The persona's generation cache, `data/synthetic/<slug>/generations.jsonl`."""
    return GenerationCache(config.data_dir / SYNTHETIC_DIRNAME / slug / GENERATIONS_FILENAME)


def persona_request(
    config: FoundryConfig,
    summary: ValidationSummary,
    slug: str,
    slot: Slot,
    indexes: dict[str, PassageIndex],
    template: Any,
    engine: Provider,
    beliefs: BeliefGraph | None = None,
) -> TurnRequest:
    """The request for `slug`'s turn in `slot`, grounded in its passages for the topic and,
    with `beliefs` (its graph, `load_persona_beliefs`), in a path of its own beliefs."""
    contracts = {p.slug: p.contract for p in summary.personas if p.contract is not None}
    opponent = None
    if slot.move == "challenge":
        opponent = choose_opponent(slug, slot, sorted(contracts), indexes)
        if opponent is not None:
            opponent = (contracts[opponent[0]].name, opponent[1])
    return turn_request(
        slot=slot,
        contract=contracts[slug],
        passages=indexes[slug].top(slot.topic.prompt, config.synthesis.passages),
        template=template,
        config=config.synthesis,
        provider=engine.name,
        model=engine.model,
        opponent=opponent,
        plain=engine.name == "local",
        beliefs=beliefs,
    )


def turn_row(request: TurnRequest, generated: GenerationResult) -> dict[str, Any]:
    """The cache row of a generated turn: the `DebateTurn` fields plus `kind`.

    `belief_nodes` is written only when the turn argued along a belief path, so a persona without
    a graph gets the rows it got before graphs existed.
    """
    row = generation_row(request.job, generated) | {
        "kind": "turn",
        "topic_id": request.slot.topic.id,
        "prompt": request.prompt,
        "move": request.slot.move,
        "split": request.slot.split,
        "template": request.job.meta.get("template", ""),
        "passage_ids": list(request.passage_ids),
        "opponent": request.opponent,
    }
    if request.belief_nodes:
        row["belief_nodes"] = list(request.belief_nodes)
    return row


def collect_turns(
    requests: list[TurnRequest],
    caches: dict[str, GenerationCache],
    turns: dict[str, list[DebateTurn]],
) -> None:
    """Add the turn of every request that has one in its cache (made now or by an earlier run)."""
    for request in requests:
        row = caches[request.persona].get(request.job.key)
        if row is not None:
            fields = {k: v for k, v in row.items() if k in DebateTurn.model_fields}
            fields["text"] = strip_node_citations(fields["text"], fields.get("belief_nodes", ()))
            turns[request.persona].append(DebateTurn.model_validate(fields))
