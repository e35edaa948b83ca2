"""What synthesis asks for: (topic, move) slots, and the request for one persona in one slot.

Every persona gets the same slots, so each turn has a counterpart by every other persona on the
same prompt and move (what cross-persona pairs need). Slots cover the train and dev topics in a
stable hashed order, the move rotating with the topic; held-out topics are never planned.

A request's cache key hashes everything that shapes the answer (provider, model, template, both
prompts, sampling parameters), so a rerun finds what it already paid for and nothing else. A
persona's belief graph enters the key the way its contract does, through the prompt: the path a
request argues along is written into its user prompt, so editing the graph redoes exactly the
turns whose path it changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from foundry.data.beliefs import BeliefGraph
from foundry.data.framing import (
    TopicSplit,
    contract_system_prompt,
    move_prompt,
    persona_system_prompt,
)
from foundry.data.retrieval import PassageIndex
from foundry.data.schemas import CorpusItem, DebateTopic, PersonaContract, Split
from foundry.logs import get_logger
from foundry.synthesis.belief_paths import (
    BeliefStep,
    choose_belief_path,
    describe_path,
    path_node_ids,
)
from foundry.synthesis.config import Move, SynthesisConfig
from foundry.synthesis.jobs import GenerationJob
from foundry.synthesis.prompt_templates import PromptTemplate

logger = get_logger(__name__)

# The word range asked of the writer; the quality filter's bounds are wider on purpose.
TARGET_WORDS = (80, 250)
PASSAGE_CHARS = 600


@dataclass(frozen=True)
class Slot:
    topic: DebateTopic
    move: Move
    split: Split


@dataclass(frozen=True)
class TurnRequest:
    """One persona's request for one slot, with what it was grounded on."""

    slot: Slot
    persona: str
    prompt: str
    job: GenerationJob
    passage_ids: tuple[str, ...]
    opponent: str = ""
    belief_nodes: tuple[str, ...] = ()


def plan_slots(topics: TopicSplit, moves: Sequence[Move], count: int, seed: int = 0) -> list[Slot]:
    """`count` slots (at most topics x moves) over the train and dev topics; dev slots land in
    the validation split. Each round over the topics shifts the moves by one, so no pair repeats."""
    roles = {t.id: "validation" for t in topics.dev} | {t.id: "train" for t in topics.train}
    ordered = sorted(topics.framing, key=lambda t: _digest(f"{seed}:{t.id}"))
    if not ordered:
        return []
    slots: dict[tuple[str, str], Slot] = {}
    for i in range(min(count, len(ordered) * len(moves))):
        topic = ordered[i % len(ordered)]
        move = moves[(i // len(ordered) + i) % len(moves)]
        slots[(topic.id, move)] = Slot(topic, move, roles[topic.id])  # type: ignore[arg-type]
    return list(slots.values())


def turn_request(
    *,
    slot: Slot,
    contract: PersonaContract,
    passages: Sequence[CorpusItem],
    template: PromptTemplate,
    config: SynthesisConfig,
    provider: str,
    model: str,
    opponent: tuple[str, str] | None = None,
    plain: bool = False,
    beliefs: BeliefGraph | None = None,
) -> TurnRequest:
    """The request for `contract`'s turn in `slot`; `opponent` is (name, text) for a challenge.

    `plain` (the `local` provider) asks as the prompt-only baseline is asked: the contract as
    system prompt and the short debate prompt as user turn, which a small base model can take.
    `beliefs` is the persona's belief graph: a path through it chosen for the topic goes into the
    user prompt (and to the offline composer), and its node ids into the turn; the prompt-only
    baseline never gets it.
    """
    opponent_text = opponent[1] if opponent else None
    prompt = move_prompt(slot.topic, slot.move, opponent_text or "")
    path: list[BeliefStep] = []
    if plain:
        system, user = contract_system_prompt(contract), prompt
    else:
        path = _belief_path(beliefs, slot, contract.slug, template)
        user = template.user.format(
            prompt=slot.topic.prompt,
            move_instruction=_move_instruction(template, slot.move, opponent),
            passages="\n".join(f"- {p.text[:PASSAGE_CHARS]}" for p in passages),
            min_words=TARGET_WORDS[0],
            max_words=TARGET_WORDS[1],
            beliefs=_beliefs_block(template, path),
        )
        system = template.system.format(persona=persona_system_prompt(contract))
    key = job_key(provider, model, template.name, system, user, config)
    job = GenerationJob(
        key=key,
        system=system,
        user=user,
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        persona=contract.slug,
        meta={
            "contract": contract,
            "prompt": slot.topic.prompt,
            "move": slot.move,
            "passages": list(passages),
            "opponent_text": opponent_text,
            "template": template.name,
            "belief_path": path,
        },
    )
    return TurnRequest(
        slot=slot,
        persona=contract.slug,
        prompt=prompt,
        job=job,
        passage_ids=tuple(p.id for p in passages),
        opponent=opponent[0] if opponent else "",
        belief_nodes=tuple(path_node_ids(path)),
    )


def _belief_path(
    beliefs: BeliefGraph | None, slot: Slot, slug: str, template: PromptTemplate
) -> list[BeliefStep]:
    """The path the turn argues along: seeded by the slot, so a rerun asks the same request."""
    if beliefs is None:
        return []
    if not template.has_beliefs:
        _warn_template_without_beliefs(template.name)
        return []
    seed = f"{slot.topic.id}:{slot.move}:{slug}"
    return choose_belief_path(beliefs, slot.topic.prompt, seed=seed)


def _beliefs_block(template: PromptTemplate, path: list[BeliefStep]) -> str:
    """What fills `{beliefs}`: empty without a path, so such a request keeps its old key."""
    return "\n\n" + template.beliefs.format(path=describe_path(path)) if path else ""


@cache
def _warn_template_without_beliefs(name: str) -> None:
    logger.warning(
        "prompt template %r has no `beliefs` block or no `{beliefs}` slot in `user`, so belief "
        "graphs are left out of its requests; add both (see debate-turn-v1.yaml) to use them",
        name,
    )


def _move_instruction(
    template: PromptTemplate, move: Move, opponent: tuple[str, str] | None
) -> str:
    if move != "challenge":
        return getattr(template.moves, move)
    if opponent is None:
        return template.moves.challenge_conventional
    return template.moves.challenge.format(opponent=opponent[0], opponent_text=opponent[1])


def job_key(
    provider: str, model: str, template: str, system: str, user: str, config: SynthesisConfig
) -> str:
    """The cache key of a request: 32 hex characters (valid as a batch `custom_id`)."""
    parts = [provider, model, template, system, user, config.max_tokens, config.temperature]
    return _digest(json.dumps(parts, ensure_ascii=False))[:32]


def prompt_hash(system: str, user: str) -> str:
    return _digest(f"{system}\0{user}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def choose_opponent(
    slug: str,
    slot: Slot,
    slugs: list[str],
    indexes: Mapping[str, PassageIndex],
) -> tuple[str, str] | None:
    """(opponent slug, text to challenge) for `slug`'s challenge in `slot`: a fixed other persona
    (by hash), and the passage of its real writing that best fits the topic.

    Real writing rather than the opponent's synthetic turns, so a persona's turns depend on its
    own inputs only and can be cached and rebuilt persona by persona."""
    others = [s for s in slugs if s != slug]
    if not others:
        return None
    digest = hashlib.sha256(f"{slot.topic.id}:{slug}".encode()).digest()
    other = others[digest[0] % len(others)]
    passages = indexes[other].top(slot.topic.prompt, 1)
    return (other, passages[0].text) if passages else None
