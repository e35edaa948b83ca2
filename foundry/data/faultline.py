"""Import personas from the layout the Faultline debate product keeps them in.

`import_faultline(source, config, deck=None)` reads `contracts/<Name>.json`, `corpus/<Name>.json`,
optional `worldviews/<Name>.json`, `beliefs/<Name>.json`, `worldviews/_conflicts.json` and
`personas.json` (decks, display names, handles). It converts each persona to the native layout
(`contract.yaml`, `beliefs.json` and `corpus/faultline.json`, the corpus bytes kept as they were)
in a staging folder, slugged by its Faultline id, validates everything, and only then moves the
personas into `data/personas/`, merges their conflicts into `data/conflicts.yaml` and writes their
debate topics into `data/topics.yaml`. A failure anywhere leaves `data/` as it was. It returns an
`ImportReport` with one `ImportedPersona` per persona; reading the folder lives in
`foundry.data.faultline_sources`, converting one persona in `foundry.data.faultline_staging`, the
field mapping in `foundry.data.faultline_mapping`, the conflicts in
`foundry.data.faultline_conflicts` and the topics in `foundry.data.faultline_topics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from foundry.atomic import replace_dir, staged_dir, write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.faultline_conflicts import ConflictsReport, plan_conflicts
from foundry.data.faultline_sources import FaultlineSource, find_sources
from foundry.data.faultline_staging import ImportedPersona, stage_persona
from foundry.data.faultline_topics import TopicsReport, plan_topics
from foundry.data.personas import (
    CONTRACT_FILENAME,
    CORPUS_DIRNAME,
    discover_personas,
    load_contract,
    read_yaml,
)
from foundry.errors import Problem, raise_for_errors
from foundry.logs import get_logger

logger = get_logger(__name__)


class ImportReport(BaseModel):
    source: str
    deck: str | None
    personas: list[ImportedPersona]
    conflicts: ConflictsReport | None = Field(
        None, description="What `worldviews/_conflicts.json` gave; None when there is none."
    )
    topics: TopicsReport | None = Field(
        None, description="What was written to the topics file; None when it was left as it was."
    )
    warnings: list[str] = Field(default_factory=list)


def import_faultline(
    source: Path,
    config: FoundryConfig,
    deck: str | None = None,
    force: bool = False,
    validate: Callable[[Path], list[Problem]] | None = None,
) -> ImportReport:
    """Convert a Faultline persona folder into `data/personas/`; all or nothing.

    `validate(staged_persona_dir)` runs the full corpus checks (duplicate ids, empty texts, ...) on
    each converted persona before anything is moved; without it only file structure is checked.

    Raises:
        DataError: the folder, a deck, a contract, corpus, worldview, belief graph, the
            conflicts file or the project's topics file is invalid, or an import would overwrite
            a persona that was not imported from Faultline (unless `force`).
    """
    sources, problems = find_sources(source, deck)
    raise_for_errors(problems, f"Faultline import from {source}")
    report = ImportReport(source=str(source), deck=deck, personas=[])
    with staged_dir(config.personas_dir, prefix=".import-") as stage:
        staged: list[tuple[Path, ImportedPersona, FaultlineSource]] = []
        for src in sources:
            result = stage_persona(src, stage, config, problems)
            if result is not None:
                staged.append((*result, src))
        previous = _previous_imports(config)
        _check_collisions([s for _, s, _ in staged], config, force, previous, problems)
        if validate is not None:
            reported = {_problem_key(p) for p in problems}
            for folder, persona, src in staged:
                # The staging folder is deleted on return: point at the files the user can open.
                target = config.persona_dir(persona.slug)
                for problem in validate(folder):
                    problem = _unstaged(problem, folder, src, target)
                    if _problem_key(problem) not in reported:
                        reported.add(_problem_key(problem))
                        problems.append(problem)
        slugs = _slugs_by_id(previous, staged)
        conflicts_text, report.conflicts = plan_conflicts(
            source, slugs, config.conflicts_file, problems
        )
        contracts = [load_contract(folder)[0] for folder, _, _ in staged]
        topics_text, report.topics = plan_topics(
            source, deck, [c for c in contracts if c], slugs, set(previous), config, problems
        )
        raise_for_errors(problems, f"Faultline import from {source}")
        for folder, persona, _ in staged:
            replace_dir(folder, config.persona_dir(persona.slug))
            report.personas.append(persona)
        if conflicts_text:
            write_text_atomic(config.conflicts_file, conflicts_text)
        if topics_text:
            write_text_atomic(config.topics_file, topics_text)
    report.warnings = [str(p) for p in problems if p.level == "warning"]
    logger.info(
        "imported %d persona(s) from %s with %d warning(s) (listed in the report)",
        len(report.personas),
        source,
        len(report.warnings),
    )
    if report.conflicts is not None:
        logger.info("%s", report.conflicts.summary())
    if report.topics is not None:
        logger.info("%s", report.topics.summary())
    return report


def _previous_imports(config: FoundryConfig) -> dict[str, str]:
    """Faultline id by slug of the personas in `data/personas/` imported from Faultline."""
    ids = {}
    for slug in discover_personas(config.personas_dir):
        path = config.personas_dir / slug / CONTRACT_FILENAME  # any folder name
        # Unreadable: nothing shows it came from Faultline, so it counts as hand-written.
        raw, problem = read_yaml(path) if path.is_file() else (None, None)
        if problem is None and isinstance(raw, dict) and raw.get("source") == "faultline":
            ids[slug] = str(raw.get("source_id") or "")
    return ids


def _slugs_by_id(
    previous: dict[str, str], staged: list[tuple[Path, ImportedPersona, FaultlineSource]]
) -> dict[str, str]:
    """Slug by Faultline id for this import's personas and those imported before, so a deck
    imported after another still gets the conflicts between the two."""
    now = {src.persona_id: persona.slug for _, persona, src in staged}
    before = {i: s for s, i in previous.items() if i and s not in now.values()}
    return before | now


def _problem_key(problem: Problem) -> tuple[str, str, str, str]:
    """The same finding reported by the import and by `validate` (with another fix) counts once."""
    return problem.level, str(problem.path), problem.where, problem.message


def _unstaged(problem: Problem, folder: Path, src: FaultlineSource, target: Path) -> Problem:
    """`problem` re-pointed from the staged copy to the Faultline corpus or the final folder."""
    if problem.path is None or not problem.path.is_relative_to(folder):
        return problem
    relative = problem.path.relative_to(folder)
    if relative.parts[:1] == (CORPUS_DIRNAME,) and src.corpus_path is not None:
        path = src.corpus_path
    else:
        path = target / relative
    return dataclasses.replace(
        problem, path=path, message=problem.message.replace(str(folder), str(target))
    )


def _check_collisions(
    personas: list[ImportedPersona],
    config: FoundryConfig,
    force: bool,
    previous: dict[str, str],
    problems: list[Problem],
) -> None:
    """Two personas on one slug, a hand-written persona in the way, a persona imported before
    under another slug. `previous`: Faultline id by slug of the personas imported before."""
    seen: dict[str, str] = {}
    earlier = {persona_id: slug for slug, persona_id in previous.items() if persona_id}
    for persona in personas:
        if persona.slug in seen:
            problems.append(
                Problem(
                    "error",
                    None,
                    f"persona {persona.source_id!r}",
                    f"same slug {persona.slug!r} as {seen[persona.slug]!r}",
                    "give one of them another `personaId`",
                )
            )
        seen[persona.slug] = persona.source_id
        old_slug = earlier.get(persona.source_id, persona.slug)
        if old_slug != persona.slug:
            old_dir = config.personas_dir / old_slug
            problems.append(
                Problem(
                    "warning",
                    old_dir,
                    "",
                    f"{persona.source_id!r} was imported before as {old_slug!r}; it is now "
                    f"{persona.slug!r} (slugs come from the Faultline id)",
                    f"remove {old_dir} so the persona is not there twice",
                )
            )
        existing = config.persona_dir(persona.slug) / CONTRACT_FILENAME
        if not existing.is_file():
            continue
        persona.replaced = True
        if persona.slug not in previous and not force:
            problems.append(
                Problem(
                    "error",
                    existing,
                    "",
                    f"persona {persona.slug!r} exists and was not imported from Faultline",
                    "pass --force to replace it, or rename it",
                )
            )
