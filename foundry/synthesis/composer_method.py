"""The persona's reasoning method as sentence templates, for the offline composer.

Owns how a contract's `reasoning_method` becomes first-person verb phrases ("Locate the claim on
its adoption curve" -> "locate the claim on its adoption curve"), read from its steps or, without
steps, off its third-person description, and how those phrases become lead-in templates that walk
through the method in order ("First, I ...", "Then I ...", "Finally, I ..."). Public entry points:
`method_name`, `step_phrases`, `walk_steps` and `SLOT`, the mark where a passage fragment goes in
a sentence template.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from foundry.data.schemas import PersonaContract
from foundry.data.textnorm import words
from foundry.synthesis.composer_text import SENTENCE_END, lower_first, to_first_person

SLOT = "\ue000"  # where a passage fragment goes in a sentence template
_STEP_CUT = re.compile(r",\s|\s(?:and|or|but|then)\s")
_NOT_VERBS = {"the", "a", "an", "this", "that", "these", "those", "my", "his", "her", "their"}
_NOT_VERBS |= {"its", "our", "every", "each", "all", "some", "no", "what", "who", "how", "if"}
_PLAIN_STEPS = ["set out the evidence", "trace the mechanism behind it", "weigh what follows"]
_FIRST = ["First, I {s}", "My first move is to {s}", "To begin, I {s}"]
_MIDDLE = ["Then I {s}", "Next, I {s}", "After that, I {s}", "From there I {s}"]
_LAST = ["Finally, I {s}", "Last, I {s}"]


def method_name(contract: PersonaContract) -> str:
    """The method's name as it reads mid-sentence, or a plain stand-in without a method."""
    method = contract.reasoning_method
    return lower_first(method.name) if method else "plain evidence and mechanism"


def step_phrases(contract: PersonaContract) -> list[str]:
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


def walk_steps(steps: Sequence[str], rng: random.Random) -> list[str]:
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
