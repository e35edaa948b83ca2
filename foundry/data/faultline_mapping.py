"""Field mapping from Faultline's camelCase JSON to the native persona contract.

Pure functions, no file access: `contract_fields(raw, name, handle, slug, trainable)` turns a
Faultline contract into `PersonaContract` fields (its `epistemology` also becomes the
`reasoning_method`, its `evidencePolicy` the `constitution`), `read_positions(raw, path,
problems)` turns a parsed worldview into contract positions, and `parse_confidence(value)` reads a
confidence given as a number, a percentage or a word. `CONTRACT_KEYS` lists the contract keys
Faultline may use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from foundry.errors import Problem

CONTRACT_KEYS = {
    "personaId",
    "version",
    "personality",
    "bias",
    "stakes",
    "epistemology",
    "timeHorizon",
    "flipConditions",
    "evidencePolicy",
    "anchorExcerpts",
    "name",
    "summary",
}
# A list line: "- x", "* x", "• x", "1. x", "2) x", "(3) x", "a) x".
_LIST_LINE = re.compile(r"^\s*(?:[-*•–]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s+(?P<item>\S.*)$")
# Numbered items run together on one line: "1) read the ledger 2) compare ..."
_INLINE_NUMBER = re.compile(r"(?:^|(?<=\s))\(?(\d{1,2})[.)]\s+")
_CONFIDENCE_WORDS = {"very high": 0.95, "high": 0.85, "medium": 0.6, "moderate": 0.6, "low": 0.35}


def contract_fields(
    raw: dict[str, Any], name: str, handle: str, slug: str, trainable: bool, persona_id: str = ""
) -> dict:
    """`PersonaContract` fields (without positions) from a Faultline contract object.

    `persona_id` is the Faultline id (kept as `source_id`) when the contract has no `personaId`.
    """
    policy = raw.get("evidencePolicy") or {}
    if not isinstance(policy, dict):
        policy = {}
    return {
        "name": name,
        "slug": slug,
        "summary": _text(raw.get("summary")),
        "personality": _text(raw.get("personality")),
        "bias": _text(raw.get("bias")),
        "stakes": _text(raw.get("stakes")),
        "epistemology": _text(raw.get("epistemology")),
        "time_horizon": _text(raw.get("timeHorizon")),
        "flip_conditions": _list(raw.get("flipConditions")),
        "evidence_policy": {
            "acceptable": _list(policy.get("acceptableSources")),
            "unacceptable": _list(policy.get("unacceptableSources")),
            "weighting": _text(policy.get("weightingRules")),
            "tool_triggers": _list(policy.get("toolPullTriggers")),
        },
        "anchor_excerpts": [
            {k: _text(a.get(k)) for k in ("id", "content", "source", "date")}
            for a in raw.get("anchorExcerpts") or []
            if isinstance(a, dict)
        ],
        "reasoning_method": reasoning_method(raw.get("epistemology"), name),
        "constitution": constitution(policy),
        "trainable": trainable,
        "source": "faultline",
        "source_id": _text(raw.get("personaId")) or persona_id,
        "version": _text(raw.get("version")),
        "handle": handle,
    }


def reasoning_method(epistemology: Any, name: str) -> dict[str, Any] | None:
    """`ReasoningMethod` fields from a Faultline `epistemology` (a string or a list); None if empty.

    A list, or a text with numbered or bulleted lines, gives the steps; the description is the
    whole text as prose. The method is named after the persona (`name`), so the name reads
    mid-sentence ("my method is the epistemology of Ada Quill").
    """
    if isinstance(epistemology, list):
        steps = [_strip_marker(str(v)) for v in epistemology if str(v).strip()]
        intro = ""
    else:
        steps, intro = split_items(_text(epistemology).strip())
    if not steps and not intro:
        return None
    sentences = [_sentence(step[:1].upper() + step[1:]) for step in steps]
    description = " ".join([intro, *sentences]).strip()
    return {"name": f"The epistemology of {name}", "description": description, "steps": steps}


def constitution(policy: dict[str, Any]) -> list[str]:
    """Self-critique principles from an `evidencePolicy`: one per weighting rule and per
    unacceptable source."""
    rules = policy.get("weightingRules")
    if isinstance(rules, list):
        rules = [_strip_marker(str(r)) for r in rules if str(r).strip()]
    else:
        text = _text(rules).strip()
        items, _ = split_items(text)
        rules = items or ([text] if text else [])
    principles = [f"Weigh evidence by this rule: {_sentence(rule)}" for rule in rules]
    principles += [
        f"Do not rest an argument on {_sentence(_lower_first(source))}"
        for source in _list(policy.get("unacceptableSources"))
        if source.strip()
    ]
    return principles


def split_items(text: str) -> tuple[list[str], str]:
    """The items of a list written in `text` (bulleted or numbered lines, or "1) .. 2) .." on
    one line), and the text that is not an item (an introduction); no items: `[]` and `text`."""
    lines = text.splitlines()
    matches = [_LIST_LINE.match(line) for line in lines]
    items = [m["item"].strip() for m in matches if m]
    if len(items) >= 2:
        intro = " ".join(line.strip() for line, m in zip(lines, matches, strict=True) if not m)
        return items, intro.strip()
    numbers = list(_INLINE_NUMBER.finditer(text))
    if len(numbers) >= 2 and [int(m[1]) for m in numbers] == list(range(1, len(numbers) + 1)):
        ends = [m.start() for m in numbers[1:]] + [len(text)]
        pieces = [text[m.end() : end] for m, end in zip(numbers, ends, strict=True)]
        items = [piece.strip().rstrip(";,").strip() for piece in pieces]
        return [i for i in items if i], text[: numbers[0].start()].strip()
    return [], text


def read_positions(raw: Any, path: Path, problems: list[Problem]) -> list[dict[str, Any]]:
    """Contract positions from a parsed worldview (`path` names it in problems)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("positions"), list):
        problems.append(
            Problem(
                "error",
                path,
                "",
                "expected {personaId, positions: [...]}",
                "fix the worldview file",
            )
        )
        return []
    positions = []
    for index, item in enumerate(raw["positions"]):
        claim = item.get("claim") if isinstance(item, dict) else None
        if not isinstance(claim, str) or not claim.strip():
            problems.append(
                Problem(
                    "error",
                    path,
                    f"positions[{index}]",
                    "position has no claim",
                    "add a `claim` string",
                )
            )
            continue
        confidence = parse_confidence(item.get("confidence"))
        if confidence is None:
            problems.append(
                Problem(
                    "warning",
                    path,
                    f"positions[{index}]",
                    f"unreadable confidence {item.get('confidence')!r}; used 0.7",
                    "use a number in [0, 1] (or 0-100) or high/medium/low",
                )
            )
        # `implicitAssumptions` and `groundingClusters` have no place in a position (conflicts
        # and the belief graph carry that material): left out on purpose, without a warning.
        positions.append(
            {
                "id": _text(item.get("id")),
                "claim": claim,
                "stance": "agree",
                "confidence": 0.7 if confidence is None else confidence,
                "type": _text(item.get("type")),
            }
        )
    return positions


def parse_confidence(value: Any) -> float | None:
    """A confidence in [0, 1] from a number, a 0-100 percentage or a word; None if unreadable."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _CONFIDENCE_WORDS:
            return _CONFIDENCE_WORDS[word]
        try:
            value = float(word.rstrip("%"))
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = float(value) / 100 if 1 < value <= 100 else float(value)
        return value if 0 <= value <= 1 else None
    return None


def _strip_marker(item: str) -> str:
    match = _LIST_LINE.match(item)
    return (match["item"] if match else item).strip()


def _sentence(text: str) -> str:
    """`text` ending in one full stop (or its own ! or ?)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _lower_first(text: str) -> str:
    """Lowercase the first letter to read mid-sentence, unless the word is an acronym or "I"."""
    first = text.split()[0] if text.split() else ""
    if first == "I" or sum(c.isupper() for c in first) > 1:
        return text
    return text[:1].lower() + text[1:]


def _text(value: Any) -> str:
    """A string, or a list's items joined: as sentences when they are, else with "; "."""
    if value is None:
        return ""
    if isinstance(value, list):
        items = [str(v).strip() for v in value]
        is_sentences = all(i.endswith((".", "!", "?")) for i in items)
        return (" " if is_sentences else "; ").join(items)
    return str(value)


def _list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
