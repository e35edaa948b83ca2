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

Randomness only comes from `random.Random` seeded with a SHA-256 of seed, prompt, move and persona:
the same inputs give the same text, and a different seed, prompt or move gives another.

Public entry point: `compose_turn`. This module owns the move shapes, the method-step phrasing and
the copy check; cutting passages into fragments, quoting and wording helpers live in
`foundry.synthesis.composer_text`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from foundry.data.schemas import CorpusItem, PersonaContract
from foundry.data.textnorm import shingles, words
from foundry.synthesis.composer_text import (
    SENTENCE_END,
    capitalize,
    content_words,
    extract_fragments,
    lower_first,
    pick_quote,
    to_first_person,
)
from foundry.synthesis.config import Move
from foundry.synthesis.turn_filters import find_refusal

MAX_COPIED_WORDS = 15
MIN_TURN_WORDS = 60
# Each turn aims at a length drawn from this range, well inside 60-200 words, so fragments longer
# than `_estimate` assumes cannot push a turn over 200.
TARGET_WORDS = (110, 165)

SLOT = "\ue000"  # where a passage fragment goes in a sentence template
_STEP_CUT = re.compile(r",\s|\s(?:and|or|but|then)\s")
_NOT_VERBS = {"the", "a", "an", "this", "that", "these", "those", "my", "his", "her", "their"}
_NOT_VERBS |= {"its", "our", "every", "each", "all", "some", "no", "what", "who", "how", "if"}
_PLAIN_STEPS = ["set out the evidence", "trace the mechanism behind it", "weigh what follows"]
_FIRST = ["First, I {s}", "My first move is to {s}", "To begin, I {s}"]
_MIDDLE = ["Then I {s}", "Next, I {s}", "After that, I {s}", "From there I {s}"]
_LAST = ["Finally, I {s}", "Last, I {s}"]
_SUPPORT = [f"The record backs this: {SLOT}.", f"Consider this too: {SLOT}.", f"Also: {SLOT}."]


def compose_turn(
    contract: PersonaContract,
    prompt: str,
    move: Move,
    passages: Sequence[CorpusItem],
    opponent_text: str | None = None,
    seed: str = "",
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
    plan = _MOVES[move](_Context(contract, prompt, opponent_text, sources, rng))
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


# Content


def _contract_texts(contract: PersonaContract) -> list[str]:
    return [excerpt.content for excerpt in contract.anchor_excerpts]


def _flip_sentence(ctx: _Context) -> str:
    """The flip condition closest to the prompt and its passages, as a first-person sentence."""
    conditions = ctx.contract.flip_conditions
    if not conditions:
        return f"I would change my mind if the evidence turned against one point: {SLOT}."
    topic, context = content_words(ctx.prompt), content_words(" ".join(ctx.sources))

    def relevance(condition: str) -> int:
        found = content_words(condition)
        return 3 * len(topic & found) + len(context & found)

    best = max(map(relevance, conditions))
    choice = ctx.rng.choice([c for c in conditions if relevance(c) == best])
    lead = ctx.rng.choice(["if I saw this", "on seeing this"])
    return f"I would change my mind {lead}: {lower_first(to_first_person(choice.rstrip('.')))}."


# Method


def _method_name(contract: PersonaContract) -> str:
    method = contract.reasoning_method
    return lower_first(method.name) if method else "plain evidence and mechanism"


def _step_phrases(contract: PersonaContract) -> list[str]:
    """The method's steps as first-person verb phrases ("locate the claim on its curve")."""
    method = contract.reasoning_method
    if method is None:
        return list(_PLAIN_STEPS)
    if method.steps:
        return [_step_phrase(step) for step in method.steps]
    # No steps: what the description says the persona does, then the method's name, at least 3.
    phrases = [_step_phrase(step) for step in _description_steps(contract)]
    generic = [f"start from {lower_first(method.name)}", "test the evidence against it"]
    return [*phrases, *generic[len(phrases) :], "draw what it supports"]


def _description_steps(contract: PersonaContract) -> list[str]:
    """Steps read off a third-person method description ("She then names ..." -> "name ...")."""
    skip = {"he", "she", "they", "then", "also", "first", *words(contract.name)}
    steps = []
    for sentence in SENTENCE_END.split(contract.reasoning_method.description):
        tokens = sentence.split()
        start = 0
        while start < len(tokens) and tokens[start].lower().strip(",") in skip:
            start += 1
        if start == 0 or start >= len(tokens) - 1 or not tokens[start].endswith("s"):
            continue  # no subject we know to drop, or no third-person verb after it
        steps.append(" ".join([_base_form(tokens[start]), *tokens[start + 1 :]]))
    return steps


def _base_form(verb: str) -> str:
    """Third person to base form: "identifies" -> "identify", "reaches" -> "reach"."""
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes", "zes")):
        return verb[:-2]
    return verb[:-1]


def _step_phrase(step: str) -> str:
    head = re.split(r"[:;]", step, maxsplit=1)[0].strip().rstrip(".")
    if len(head.split()) > 10:
        for match in _STEP_CUT.finditer(head):
            if len(head[: match.start()].split()) >= 4:
                head = head[: match.start()]
                break
    head = to_first_person(" ".join(head.split()[:14]))
    first = head.split()[0].lower()
    is_verb = first not in _NOT_VERBS and not first.endswith(("ing", "ed"))
    is_verb = is_verb and not (first.endswith("s") and not first.endswith("ss"))
    return lower_first(head) if is_verb else f"turn to {lower_first(head)}"


def _walk(steps: Sequence[str], rng: random.Random) -> list[str]:
    """Sentence templates that walk through `steps` in order, each with a fragment slot."""
    templates, middle = [], rng.sample(_MIDDLE, len(_MIDDLE))  # no "Then I ... Then I"
    for i, step in enumerate(steps):
        if i == 0:
            lead = rng.choice(_FIRST)
        elif i == len(steps) - 1 and i > 1:
            lead = rng.choice(_LAST)
        else:
            lead = middle[(i - 1) % len(middle)]
        templates.append(lead.format(s=step) + f": {SLOT}.")
    return templates


def _opener(contract: PersonaContract, rng: random.Random) -> list[str]:
    """A signature opening line from the style markers ("Where are we on the curve?"), maybe."""
    lines = [
        quoted
        for marker in contract.style.markers
        if marker.lower().startswith("open")
        for quoted in re.findall(r"'([^']+[?.!])'", marker)
    ]
    return [rng.choice(lines)] if lines and rng.random() < 0.6 else []


# Moves: each returns (head, body, tail) sentence templates; only body sentences are optional.

Plan = tuple[list[str], list[str], list[str]]


@dataclass(frozen=True)
class _Context:
    contract: PersonaContract
    prompt: str
    opponent: str | None
    sources: Sequence[str]
    rng: random.Random

    @property
    def question(self) -> str:
        """The prompt as quoted in the turn (at most 25 words)."""
        tokens = self.prompt.replace('"', "'").split()
        return " ".join(tokens[:25]) + ("..." if len(tokens) > 25 else "")


def _claim(ctx: _Context) -> Plan:
    name, rng = _method_name(ctx.contract), ctx.rng
    opening = [f'My answer to "{ctx.question}" starts from {name}.']
    opening.append(f'On "{ctx.question}", I argue by {name}.')
    head = [*_opener(ctx.contract, rng), rng.choice(opening), f"The thesis in one line: {SLOT}."]
    tail = [rng.choice([f"So my answer stands: {SLOT}.", f"That is the case in short: {SLOT}."])]
    return head, _walk(_step_phrases(ctx.contract), rng), tail


def _challenge(ctx: _Context) -> Plan:
    rng = ctx.rng
    if ctx.opponent:
        quote = pick_quote(ctx.opponent, ctx.prompt, rng)
        target = rng.choice([f'You say "{quote}".', f'The other side argues that "{quote}".'])
        target += f' On "{ctx.question}", I dispute that.'
    else:
        target = f'The conventional view on "{ctx.question}" reads the headline numbers at face '
        target += "value. I dispute it."
    method = f"Run it through {_method_name(ctx.contract)} and it looks different."
    head = [*_opener(ctx.contract, rng), target, method]
    tail = [f"That is where the argument breaks: {SLOT}."]
    return head, _walk(_step_phrases(ctx.contract)[:3], rng), tail


def _clarification(ctx: _Context) -> Plan:
    contract, rng = ctx.contract, ctx.rng
    steps = _step_phrases(contract)
    denial = "I do not claim more than that"
    if contract.style.avoid:
        denial += f", and my case does not rest on {lower_first(rng.choice(contract.style.avoid))}"
    head = [
        f'Let me be precise about what I claim on "{ctx.question}".',
        f"I claim this much: {SLOT}.",
        denial.rstrip(".") + ".",
        f"My method is {_method_name(contract)}: I {steps[0]}, and then I {steps[-1]}.",
    ]
    rules = rng.sample(contract.constitution, min(1, len(contract.constitution)))
    body = [f"A rule I keep: {lower_first(to_first_person(r.rstrip('.')))}." for r in rules]
    return head, _walk(steps[1:3], rng) + body, [f"That is the whole claim: {SLOT}."]


def _concession(ctx: _Context) -> Plan:
    rng = ctx.rng
    if ctx.opponent:
        quote = pick_quote(ctx.opponent, ctx.prompt, rng)
        grant = f'On "{ctx.question}", I grant you this much: "{quote}".'
    else:
        grant = f'On "{ctx.question}", I will concede a point: {SLOT}.'
    head = [grant, f"That is fair, and {_method_name(ctx.contract)} has to account for it."]
    steps = _step_phrases(ctx.contract)
    body = [
        f"Even so, I {steps[0]}: {SLOT}.",
        f"Then I {steps[-2 if len(steps) > 1 else 0]}: {SLOT}.",
        f"I still hold: {SLOT}.",
    ]
    return head, body, [_flip_sentence(ctx)]


def _reframe(ctx: _Context) -> Plan:
    rng = ctx.rng
    misframed = [f'"{ctx.question}" is the wrong way to put it.']
    misframed.append(f'Asking "{ctx.question}" misframes it.')
    head = [
        *_opener(ctx.contract, rng),
        rng.choice(misframed),
        f"I would recast it as a problem of {_method_name(ctx.contract)}: {SLOT}.",
    ]
    steps = _step_phrases(ctx.contract)[:3]
    body = [f"Recast that way, I {steps[0]}: {SLOT}.", *_walk(steps, rng)[1:]]
    return head, body, [f"Asked that way, the answer is clearer: {SLOT}."]


_MOVES = {
    "claim": _claim,
    "challenge": _challenge,
    "clarification": _clarification,
    "concession": _concession,
    "reframe": _reframe,
}
