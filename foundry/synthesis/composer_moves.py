"""The shape of each debate move, for the offline composer: which sentences a turn has, in order.

A move (claim, challenge, clarification, concession, reframe) is a function of a `MoveContext`
that returns a `Plan`: head, body and tail sentence templates, each maybe with a `SLOT` for a
passage fragment; only body sentences are optional. The head quotes the prompt (and, for
challenge and concession, the other side), the body walks the persona's method, the tail closes
(a concession closes on the persona's flip condition). Public entry points: `MOVE_SHAPES`
(move -> plan function), `MoveContext` and `Plan`, and `belief_sentences`, the persona's belief
path in its own voice (a head addition for any move when the persona has a belief graph).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from foundry.data.schemas import PersonaContract
from foundry.synthesis.belief_paths import BeliefStep
from foundry.synthesis.composer_method import SLOT, method_name, step_phrases, walk_steps
from foundry.synthesis.composer_text import (
    capitalize,
    content_words,
    lower_first,
    pick_quote,
    to_first_person,
)

Plan = tuple[list[str], list[str], list[str]]


@dataclass(frozen=True)
class MoveContext:
    """What a move's shape draws on: the persona, the prompt, the other side, the passages."""

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


def _opener(contract: PersonaContract, rng: random.Random) -> list[str]:
    """A signature opening line from the style markers ("Where are we on the curve?"), maybe."""
    lines = [
        quoted
        for marker in contract.style.markers
        if marker.lower().startswith("open")
        for quoted in re.findall(r"'([^']+[?.!])'", marker)
    ]
    return [rng.choice(lines)] if lines and rng.random() < 0.6 else []


def _flip_sentence(ctx: MoveContext) -> str:
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


def _claim(ctx: MoveContext) -> Plan:
    name, rng = method_name(ctx.contract), ctx.rng
    opening = [f'My answer to "{ctx.question}" starts from {name}.']
    opening.append(f'On "{ctx.question}", I argue by {name}.')
    head = [*_opener(ctx.contract, rng), rng.choice(opening), f"The thesis in one line: {SLOT}."]
    tail = [rng.choice([f"So my answer stands: {SLOT}.", f"That is the case in short: {SLOT}."])]
    return head, walk_steps(step_phrases(ctx.contract), rng), tail


def _challenge(ctx: MoveContext) -> Plan:
    rng = ctx.rng
    if ctx.opponent:
        quote = pick_quote(ctx.opponent, ctx.prompt, rng)
        target = rng.choice([f'You say "{quote}".', f'The other side argues that "{quote}".'])
        target += f' On "{ctx.question}", I dispute that.'
    else:
        target = f'The conventional view on "{ctx.question}" reads the headline numbers at face '
        target += "value. I dispute it."
    method = f"Run it through {method_name(ctx.contract)} and it looks different."
    head = [*_opener(ctx.contract, rng), target, method]
    tail = [f"That is where the argument breaks: {SLOT}."]
    return head, walk_steps(step_phrases(ctx.contract)[:3], rng), tail


def _clarification(ctx: MoveContext) -> Plan:
    contract, rng = ctx.contract, ctx.rng
    steps = step_phrases(contract)
    denial = "I do not claim more than that"
    if contract.style.avoid:
        denial += f", and my case does not rest on {lower_first(rng.choice(contract.style.avoid))}"
    head = [
        f'Let me be precise about what I claim on "{ctx.question}".',
        f"I claim this much: {SLOT}.",
        denial.rstrip(".") + ".",
        f"My method is {method_name(contract)}: I {steps[0]}, and then I {steps[-1]}.",
    ]
    rules = rng.sample(contract.constitution, min(1, len(contract.constitution)))
    body = [f"A rule I keep: {lower_first(to_first_person(r.rstrip('.')))}." for r in rules]
    return head, walk_steps(steps[1:3], rng) + body, [f"That is the whole claim: {SLOT}."]


def _concession(ctx: MoveContext) -> Plan:
    rng = ctx.rng
    if ctx.opponent:
        quote = pick_quote(ctx.opponent, ctx.prompt, rng)
        grant = f'On "{ctx.question}", I grant you this much: "{quote}".'
    else:
        grant = f'On "{ctx.question}", I will concede a point: {SLOT}.'
    head = [grant, f"That is fair, and {method_name(ctx.contract)} has to account for it."]
    steps = step_phrases(ctx.contract)
    body = [
        f"Even so, I {steps[0]}: {SLOT}.",
        f"Then I {steps[-2 if len(steps) > 1 else 0]}: {SLOT}.",
        f"I still hold: {SLOT}.",
    ]
    return head, body, [_flip_sentence(ctx)]


def _reframe(ctx: MoveContext) -> Plan:
    rng = ctx.rng
    misframed = [f'"{ctx.question}" is the wrong way to put it.']
    misframed.append(f'Asking "{ctx.question}" misframes it.')
    head = [
        *_opener(ctx.contract, rng),
        rng.choice(misframed),
        f"I would recast it as a problem of {method_name(ctx.contract)}: {SLOT}.",
    ]
    steps = step_phrases(ctx.contract)[:3]
    body = [f"Recast that way, I {steps[0]}: {SLOT}.", *walk_steps(steps, rng)[1:]]
    return head, body, [f"Asked that way, the answer is clearer: {SLOT}."]


MOVE_SHAPES: dict[str, Callable[[MoveContext], Plan]] = {
    "claim": _claim,
    "challenge": _challenge,
    "clarification": _clarification,
    "concession": _concession,
    "reframe": _reframe,
}


def belief_sentences(steps: Sequence[BeliefStep]) -> list[str]:
    """One sentence per step of a belief path: "Because A, B." where A supports B ("And because
    ..." when the chain goes on from B), "A, and that cuts against the idea that B." where A
    opposes B (Faultline's concepts are mostly short clauses, which both read well around)."""
    sentences, previous = [], ""
    for step in steps:
        source, target = _voiced(step.from_concept), _voiced(step.to_concept)
        if step.polarity == -1:
            sentences.append(capitalize(f"{source}, and that cuts against the idea that {target}."))
        elif step.from_node == previous:
            sentences.append(f"And because {source}, {target}.")
        else:
            sentences.append(f"Because {source}, {target}.")
        previous = step.to_node
    return sentences


def _voiced(concept: str) -> str:
    """A graph concept as it reads mid-sentence in the persona's voice."""
    return lower_first(to_first_person(concept.rstrip(" .")))
