"""Reading a Faultline persona folder: which personas it holds, their files, decks and names.

`find_sources(source, deck)` lists each persona's contract, corpus and worldview files with its
display name and handle from `personas.json` (only `deck`'s personas when one is given);
`read_worldview` and `read_json` read those files, turning bad JSON into problems that name the
file and line. `foundry.data.faultline` converts and stages what this finds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from foundry.data.corpus_formats import decode_utf8
from foundry.data.faultline_mapping import read_positions
from foundry.errors import DataError, Problem


class FaultlineSource(BaseModel):
    """One persona as found in the Faultline folder."""

    stem: str
    name: str
    handle: str = ""
    contract_path: Path
    corpus_path: Path | None
    worldview_path: Path | None


def find_sources(source: Path, deck: str | None) -> tuple[list[FaultlineSource], list[Problem]]:
    """Every persona of the folder (or of `deck`), and the problems found reading it."""
    contracts_dir = source / "contracts"
    if not contracts_dir.is_dir():
        raise DataError(
            f"{source}: no contracts/ folder; point at the Faultline persona folder "
            "that holds contracts/, corpus/ and personas.json"
        )
    names, handles, deck_ids, problems = read_personas_index(source, deck)
    sources = []
    for path in sorted(contracts_dir.glob("*.json")):
        raw, problem = read_json(path)
        if problem:
            problems.append(problem)
            continue
        persona_id = str(raw.get("personaId") or path.stem) if isinstance(raw, dict) else path.stem
        if deck_ids is not None and persona_id not in deck_ids and path.stem not in deck_ids:
            continue
        corpus = source / "corpus" / path.name
        worldview = source / "worldviews" / path.name
        sources.append(
            FaultlineSource(
                stem=path.stem,
                name=names.get(persona_id, path.stem),
                handle=handles.get(persona_id, ""),
                contract_path=path,
                corpus_path=corpus if corpus.is_file() else None,
                worldview_path=worldview if worldview.is_file() else None,
            )
        )
    if not sources and not problems:
        what = f"deck {deck!r}" if deck else str(contracts_dir)
        problems.append(
            Problem(
                "error",
                contracts_dir,
                "",
                f"no persona contracts found for {what}",
                "add contracts/<Name>.json files",
            )
        )
    return sources, problems


def read_personas_index(
    source: Path, deck: str | None
) -> tuple[dict[str, str], dict[str, str], set[str] | None, list[Problem]]:
    """Display names and handles by persona id, and the ids of `deck` (None: every persona)."""
    path = source / "personas.json"
    if not path.is_file():
        if deck:
            raise DataError(
                f"{path} not found, so deck {deck!r} cannot be resolved; "
                "drop --deck or add personas.json"
            )
        return {}, {}, None, []
    raw, problem = read_json(path)
    if problem or not isinstance(raw, dict):
        fix = problem or Problem(
            "error",
            path,
            "",
            "expected an object with `decks` and `personas`",
            'write {"decks": [...], "personas": [...]}',
        )
        return {}, {}, None, [fix]
    names = {
        str(p.get("id")): str(p.get("name") or p.get("id"))
        for p in raw.get("personas", [])
        if isinstance(p, dict) and p.get("id")
    }
    handles = {
        str(p.get("id")): str(p.get("twitterHandle"))
        for p in raw.get("personas", [])
        if isinstance(p, dict) and p.get("id") and p.get("twitterHandle")
    }
    if deck is None:
        return names, handles, None, []
    decks = {str(d.get("id")): d for d in raw.get("decks", []) if isinstance(d, dict)}
    if deck not in decks:
        raise DataError(f"{path}: no deck {deck!r}; decks: {', '.join(sorted(decks)) or 'none'}")
    return names, handles, {str(i) for i in decks[deck].get("personaIds", [])}, []


def read_worldview(path: Path | None, problems: list[Problem]) -> list[dict[str, Any]]:
    """The contract positions of the worldview file at `path`; none if absent or unreadable."""
    if path is None:
        return []
    raw, problem = read_json(path)
    if problem:
        problems.append(problem)
        return []
    return read_positions(raw, path, problems)


def read_json(path: Path) -> tuple[Any, Problem | None]:
    """The parsed JSON at `path`, or a problem naming the file and line."""
    text, problem = decode_utf8(path)
    if problem:
        return None, problem
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, Problem(
            "error",
            path,
            f"line {exc.lineno}",
            f"not valid JSON ({exc.msg})",
            "fix the JSON syntax",
        )
