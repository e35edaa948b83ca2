"""Field mapping from Faultline's camelCase JSON to the native persona contract.

Pure functions, no file access: `contract_fields(raw, name, handle, slug, trainable)` turns a
Faultline contract into `PersonaContract` fields, `read_positions(raw, path, problems)` turns a
parsed worldview into contract positions, and `parse_confidence(value)` reads a confidence given
as a number, a percentage or a word. `CONTRACT_KEYS` lists the contract keys Faultline may use.
"""

from __future__ import annotations

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
_CONFIDENCE_WORDS = {"very high": 0.95, "high": 0.85, "medium": 0.6, "moderate": 0.6, "low": 0.35}


def contract_fields(
    raw: dict[str, Any], name: str, handle: str, slug: str, trainable: bool
) -> dict:
    """`PersonaContract` fields (without positions) from a Faultline contract object."""
    policy = raw.get("evidencePolicy") or {}
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
        "trainable": trainable,
        "source": "faultline",
        "source_id": _text(raw.get("personaId")),
        "version": _text(raw.get("version")),
        "handle": handle,
    }


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


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
