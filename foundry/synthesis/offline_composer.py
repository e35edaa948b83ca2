"""A deterministic, corpus-grounded debate-turn composer: the offline fallback for synthesis.

`compose_turn` writes one debate move for a persona without any model. It is honest about what
it is (a fallback for tests, demos and runs without an API key), but its turns are grounded and
structured like the persona's arguments:

- Content comes from the persona's own passages retrieved for the prompt, cut into sentence
  clauses of at most 12 words and recombined, so no run of more than 15 words is copied verbatim
  (every sentence is checked against the passages' 16-word n-grams before it is kept).
- Structure comes from the contract's `reasoning_method`: each step becomes a first-person lead-in
  ("Locate the claim on its adoption curve" -> "First, I locate the claim on its adoption curve:"),
  so personas with different methods argue in different shapes, not just different words.
- Each move has its own shape (claim, challenge, clarification, concession, reframe).
- When the persona has a belief graph, the turn also argues along the path synthesis chose from
  it (`foundry.synthesis.belief_paths`): one sentence per edge, after the opening, so the turn
  links the persona's own concepts as its graph does ("Because A, B."; "A, and that cuts against
  the idea that B.").

Randomness only comes from `random.Random` seeded with a SHA-256 of seed, prompt, move and persona:
the same inputs give the same text, and a different seed, prompt or move gives another.

Public entry point: `compose_turn`. This module owns the turn's length and the copy check; the
move shapes live in `foundry.synthesis.composer_moves`, the method-step phrasing in
`foundry.synthesis.composer_method`, and cutting passages into fragments, quoting and wording
helpers in `foundry.synthesis.composer_text`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence

from foundry.data.schemas import CorpusItem, PersonaContract
from foundry.data.textnorm import shingles, words
from foundry.synthesis.belief_paths import BeliefStep
from foundry.synthesis.composer_method import SLOT
from foundry.synthesis.composer_moves import MOVE_SHAPES, MoveContext, Plan, belief_sentences
from foundry.synthesis.composer_text import (
    capitalize,
    extract_fragments,
    lower_first,
    to_first_person,
)
from foundry.synthesis.config import Move
from foundry.synthesis.turn_filters import find_refusal

MAX_COPIED_WORDS = 15
MIN_TURN_WORDS = 60
# Each turn aims at a length drawn from this range, well inside 60-200 words, so fragments longer
# than `_estimate` assumes cannot push a turn over 200.
TARGET_WORDS = (110, 165)

_SUPPORT = [f"The record backs this: {SLOT}.", f"Consider this too: {SLOT}.", f"Also: {SLOT}."]


def compose_turn(
    contract: PersonaContract,
    prompt: str,
    move: Move,
    passages: Sequence[CorpusItem],
    opponent_text: str | None = None,
    seed: str = "",
    beliefs: Sequence[BeliefStep] = (),
) -> str:
    """Compose one debate turn for `contract` from its own passages, shaped by its method.

    Args:
        contract: The persona; its reasoning method, flip conditions, style and constitution
            shape the turn.
        prompt: The debate prompt; the turn quotes it.
        move: `claim`, `challenge`, `clarification`, `concession` or `reframe`.
        passages: The persona's corpus items retrieved for the prompt (the content's source).
        opponent_text: The other side's last turn; `challenge` and `concession` quote from it.
        seed: Extra seed text, so one (persona, prompt, move) can give several turns.
        beliefs: The belief path to argue along (`choose_belief_path`); empty without a graph,
            and then the turn is exactly what it was before belief graphs existed.

    Returns:
        The turn: 60-200 words when the passages give enough material.

    Raises:
        ValueError: when neither the passages nor the contract have any text to draw on.
    """
    digest = hashlib.sha256("\x1f".join([seed, prompt, move, contract.slug]).encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    sources = [item.text for item in passages] or _contract_texts(contract)
    if not sources:
        raise ValueError(
            f"cannot compose a turn for {contract.slug!r}: no passages and no anchor excerpts; "
            "pass the persona's corpus items retrieved for the prompt"
        )
    turn = _Turn(sources, extract_fragments(sources, prompt, rng))
    plan = MOVE_SHAPES[move](MoveContext(contract, prompt, opponent_text, sources, rng))
    if beliefs:
        head, body, tail = plan
        plan = [*head, *belief_sentences(beliefs)], body, tail
    _fill(turn, plan, contract, rng)
    return turn.text()


def _fill(turn: _Turn, plan: Plan, contract: PersonaContract, rng: random.Random) -> None:
    """Add the plan's sentences, taking body sentences only while the drawn length allows."""
    head, body, tail = plan
    budget = rng.randint(*TARGET_WORDS) - _estimate(tail)
    for template in head:
        turn.add(template)
    for template in body:
        if turn.word_count() + _estimate([template]) <= budget:
            turn.add(template)
    while turn.word_count() + _estimate(tail) < MIN_TURN_WORDS + 10:
        if not turn.add(rng.choice(_SUPPORT)):
            break  # the passages are used up
    for template in tail:
        turn.add(template)
    for rule in contract.constitution:  # a last resort when the passages were very short
        if turn.word_count() >= MIN_TURN_WORDS:
            break
        turn.add(f"A rule I keep: {lower_first(to_first_person(rule.rstrip('.')))}.")


def _estimate(templates: Sequence[str]) -> int:
    """Words a list of templates will have once each slot holds a typical fragment."""
    return sum(len(words(t.replace(SLOT, ""))) + (9 if SLOT in t else 0) for t in templates)


class _Turn:
    """Sentences kept so far; a sentence is kept only if the text stays within the copy limit."""

    def __init__(self, sources: Sequence[str], fragments: list[str]) -> None:
        self.banned = set().union(*(shingles(s, MAX_COPIED_WORDS + 1) for s in sources))
        self.fragments = fragments
        self.sentences: list[str] = []

    def add(self, template: str) -> bool:
        """Fill the template with the first fragment that keeps the turn clean; False if none."""
        options = list(self.fragments) if SLOT in template else [""]
        for fragment in options:
            # A quoted question ends the sentence itself: no full stop after `?"`.
            sentence = re.sub(r'([?!.])"\.$', r'\1"', capitalize(template.replace(SLOT, fragment)))
            text = " ".join([*self.sentences, sentence])
            if shingles(text, MAX_COPIED_WORDS + 1) & self.banned or find_refusal(text):
                continue
            self.sentences.append(sentence)
            if fragment:
                self.fragments.remove(fragment)
            return True
        return False

    def word_count(self) -> int:
        return len(words(self.text()))

    def text(self) -> str:
        return " ".join(self.sentences)


def _contract_texts(contract: PersonaContract) -> list[str]:
    return [excerpt.content for excerpt in contract.anchor_excerpts]
