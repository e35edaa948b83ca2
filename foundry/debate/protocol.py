"""What each persona is asked in each round of a debate, and what is read back from its turns.

Round 1 asks for an opening. Every later round shows a persona the other debaters' latest turns
(a bounded window, `window_chars` each) and asks it, before it argues, to say of each other
debater's main argument whether it agrees or disagrees; a disagreement names the contested
assumption and its type, in the taxonomy Faultline's own debate engine uses (evidence, values,
definition, horizon, claim, premise). The last round (of two or more) also asks for a closing
line, `FINAL POSITION: <one sentence> | CONFIDENCE: <0-100>%`. Every turn is framed by the
persona's own reasoning method (different methods, not only different voices); with a critique
pass, the draft is revised against the persona's constitution.

Entry points: `turn_prompt(...)`, `critique_prompt(...)`, `parse_stances(text, names)` and
`parse_final(text)`. Small models follow the format loosely: parsing is lenient, and what could
not be parsed is counted, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from foundry.data.schemas import PersonaContract

DISAGREEMENT_TYPES = ("evidence", "values", "definition", "horizon", "claim", "premise")
FINAL_LINE = "FINAL POSITION: <your position in one sentence> | CONFIDENCE: <0-100>%"


@dataclass(frozen=True)
class Heard:
    """Another debater's latest turn, as a persona reads it."""

    speaker: str  # slug
    name: str  # display name
    text: str


class Stance(BaseModel):
    """What a turn says of another debater's main argument."""

    target: str  # the other debater's slug
    agrees: bool
    kind: str = ""  # one of DISAGREEMENT_TYPES, for a disagreement that names one
    assumption: str = ""


class FinalPosition(BaseModel):
    position: str
    confidence: float  # 0-1


def method_frame(contract: PersonaContract) -> str:
    """The persona's reasoning method as an instruction (empty when it has none)."""
    method = contract.reasoning_method
    if method is None:
        return ""
    steps = "".join(f"\n{i}. {step}" for i, step in enumerate(method.steps, start=1))
    return f"Reason by your method, {method.name}: {method.description}{steps}".strip()


def turn_prompt(
    question: str,
    contract: PersonaContract,
    round_number: int,
    rounds: int,
    heard: Sequence[Heard],
    window_chars: int,
) -> str:
    """The user turn for one persona in one round (round numbers start at 1)."""
    parts = [f"Debate question: {question}"]
    frame = method_frame(contract)
    if frame:
        parts.append(frame)
    if round_number == 1 or not heard:
        parts.append("Open the debate: state your position and your main argument.")
    else:
        lines = [f"{h.name}: {_window(h.text, window_chars)}" for h in heard]
        parts.append("The other debaters' latest arguments:\n" + "\n".join(lines))
        kinds = ", ".join(DISAGREEMENT_TYPES)
        parts.append(
            "First, one line for each of them: `On <name>: AGREE` or `On <name>: DISAGREE "
            f"(<type>): <the assumption you contest>`, with <type> one of {kinds}. "
            "Then answer their arguments."
        )
    if round_number == rounds and rounds > 1:
        parts.append(f"This is the last round. End with one line exactly: {FINAL_LINE}")
    return "\n\n".join(parts)


def critique_prompt(draft: str, contract: PersonaContract) -> str:
    """One self-critique pass: the draft checked against the persona's constitution."""
    principles = contract.constitution or [
        "Argue from your own evidence policy and reasoning method.",
        "Concede only what your flip conditions require.",
    ]
    rules = "\n".join(f"- {p}" for p in principles)
    return (
        f"Your draft debate turn:\n{draft}\n\nCheck it against your principles:\n{rules}\n\n"
        "Rewrite the turn so that it keeps to them, in your own voice, keeping any `On <name>:` "
        "and `FINAL POSITION:` lines. Answer with the revised turn only."
    )


_STANCE = re.compile(
    r"(?:^|(?<=[\s.;*>(-]))on\s+(?P<name>[^:\n]{1,80}?)\s*:\s*(?P<verdict>agree|disagree)\b"
    r"(?P<rest>(?:(?!\bon\s+[^:\n]{1,80}?:\s*(?:agree|disagree)\b)[^\n])*)",
    re.IGNORECASE | re.MULTILINE,
)
_KIND = re.compile(r"^\W*\(?\s*(?P<kind>" + "|".join(DISAGREEMENT_TYPES) + r")\b\s*\)?\W*", re.I)
_FINAL = re.compile(
    r"final\s+position\s*:\s*(?P<position>[^|\n]+?)\s*\|\s*confidence\s*:\s*(?P<value>\d{1,3}"
    r"(?:\.\d+)?)\s*%?",
    re.IGNORECASE,
)


def parse_stances(text: str, names: dict[str, str]) -> list[Stance]:
    """The `On <name>: AGREE|DISAGREE (<type>): <assumption>` statements of `text` (at a line's
    or a sentence's start), for the debaters in `names` (slug -> display name; either may be
    used); the first per debater counts, and what follows it on its line, up to the next such
    statement, is the assumption."""
    by_name = {_key(name): slug for slug, name in names.items()} | {_key(s): s for s in names}
    stances: dict[str, Stance] = {}
    for match in _STANCE.finditer(text):
        slug = by_name.get(_key(match["name"]))
        if slug is None or slug in stances:
            continue
        agrees = match["verdict"].lower() == "agree"
        rest, kind = match["rest"], ""
        found = _KIND.match(rest)
        if not agrees and found:
            kind, rest = found["kind"].lower(), rest[found.end() :]
        assumption = "" if agrees else rest.strip(" :-–—").strip()
        stances[slug] = Stance(target=slug, agrees=agrees, kind=kind, assumption=assumption)
    return list(stances.values())


def parse_final(text: str) -> FinalPosition | None:
    """The last `FINAL POSITION: ... | CONFIDENCE: N%` line of `text`, or None."""
    matches = list(_FINAL.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    value = float(last["value"])
    if value > 100:
        return None
    return FinalPosition(position=last["position"].strip(), confidence=round(value / 100, 4))


def _window(text: str, chars: int) -> str:
    """The first `chars` characters of a turn, cut at a word, one line."""
    flat = " ".join(text.split())
    if len(flat) <= chars:
        return flat
    return flat[:chars].rsplit(" ", 1)[0] + " ..."


def _key(name: str) -> str:
    return " ".join(name.casefold().replace("-", " ").split())
