"""Reading a Faultline persona folder: which personas it holds, their files, decks and names.

`find_sources(source, deck)` lists each persona's Faultline id (`personaId`, else the file stem),
its contract, corpus, worldview and belief files, and its display name and handle from
`personas.json` (only `deck`'s personas when one is given); `check_corpus`, `read_worldview`,
`read_conflicts` and `read_json` read those files, turning bad JSON into problems that name the
file and line. `foundry.data.faultline` converts and stages what this finds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from foundry.data.corpus_formats import decode_utf8, read_corpus_file
from foundry.data.faultline_mapping import read_positions
from foundry.errors import DataError, Problem

CONFLICTS_FILENAME = "_conflicts.json"  # in worldviews/, beside the personas' worldviews


class FaultlineSource(BaseModel):
    """One persona as found in the Faultline folder."""

    stem: str
    persona_id: str = Field(description="Faultline's id: the slug and `source_id` come from it.")
    name: str = Field(description="The display name from personas.json, else the id.")
    handle: str = ""
    contract_path: Path
    corpus_path: Path | None
    worldview_path: Path | None
    beliefs_path: Path | None = None


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
        beliefs = source / "beliefs" / path.name
        is_worldview = worldview.is_file() and path.name != CONFLICTS_FILENAME
        sources.append(
            FaultlineSource(
                stem=path.stem,
                persona_id=persona_id,
                name=names.get(persona_id, persona_id),
                handle=handles.get(persona_id, ""),
                contract_path=path,
                corpus_path=corpus if corpus.is_file() else None,
                worldview_path=worldview if is_worldview else None,
                beliefs_path=beliefs if beliefs.is_file() else None,
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


def check_corpus(src: FaultlineSource, csv_text_column: str, problems: list[Problem]) -> list[str]:
    """Check the persona's corpus file; the id of each record (its position when it has none)."""
    if src.corpus_path is None:
        problems.append(
            Problem(
                "warning",
                src.contract_path,
                "",
                f"no corpus/{src.stem}.json; imported as not trainable",
                "add the persona's corpus and import again",
            )
        )
        return []
    records, found = read_corpus_file(src.corpus_path, csv_text_column=csv_text_column)
    problems.extend(found)
    for record in records:
        if not isinstance(record.fields.get("content", record.fields.get("text")), str):
            problems.append(
                Problem(
                    "error",
                    src.corpus_path,
                    record.where,
                    "record has no text",
                    "add a `content` string",
                )
            )
    return [str(record.fields.get("id", record.where)) for record in records]


def read_worldview(path: Path | None, problems: list[Problem]) -> list[dict[str, Any]]:
    """The contract positions of the worldview file at `path`; none if absent or unreadable."""
    if path is None:
        return []
    raw, problem = read_json(path)
    if problem:
        problems.append(problem)
        return []
    return read_positions(raw, path, problems)


def read_conflicts(source: Path) -> tuple[Path | None, Any, list[Problem]]:
    """`worldviews/_conflicts.json` of `source` and its parsed JSON; no path when it is absent."""
    path = source / "worldviews" / CONFLICTS_FILENAME
    if not path.is_file():
        return None, None, []
    raw, problem = read_json(path)
    return path, raw, [problem] if problem else []


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
