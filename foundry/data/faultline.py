"""Import personas from the layout the Faultline debate product keeps them in.

`import_faultline(source, config, deck=None)` reads `contracts/<Name>.json`, `corpus/<Name>.json`,
optional `worldviews/<Name>.json` and optional `personas.json` (decks, display names, handles),
converts each persona to the native layout (`contract.yaml` + `corpus/faultline.json`, the corpus
bytes kept as they were) in a staging folder, validates everything, and only then moves the
personas into `data/personas/`. A failure anywhere leaves `data/` as it was. It returns an
`ImportReport` with one `ImportedPersona` per persona; reading the folder lives in
`foundry.data.faultline_sources` and the field mapping in `foundry.data.faultline_mapping`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from foundry.atomic import replace_dir, staged_dir, write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.corpus_formats import read_corpus_file
from foundry.data.faultline_mapping import CONTRACT_KEYS, contract_fields
from foundry.data.faultline_sources import FaultlineSource, find_sources, read_json, read_worldview
from foundry.data.personas import CONTRACT_FILENAME, CORPUS_DIRNAME, describe_validation_errors
from foundry.data.schemas import PersonaContract
from foundry.errors import Problem, raise_for_errors
from foundry.logs import get_logger
from foundry.slugs import slugify

logger = get_logger(__name__)


class ImportedPersona(BaseModel):
    slug: str
    name: str
    items: int
    trainable: bool
    positions: int
    replaced: bool


class ImportReport(BaseModel):
    source: str
    deck: str | None
    personas: list[ImportedPersona]
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
        DataError: the folder, a deck, a contract, corpus or worldview is invalid, or an import
            would overwrite a persona that was not imported from Faultline (unless `force`).
    """
    sources, problems = find_sources(source, deck)
    raise_for_errors(problems, f"Faultline import from {source}")
    report = ImportReport(source=str(source), deck=deck, personas=[])
    with staged_dir(config.personas_dir, prefix=".import-") as stage:
        staged: list[tuple[Path, ImportedPersona, FaultlineSource]] = []
        for src in sources:
            result = _stage_persona(src, stage, config, problems)
            if result is not None:
                staged.append((*result, src))
        _check_collisions([s for _, s, _ in staged], config, force, problems)
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
        raise_for_errors(problems, f"Faultline import from {source}")
        for folder, persona, _ in staged:
            replace_dir(folder, config.persona_dir(persona.slug))
            report.personas.append(persona)
    report.warnings = [str(p) for p in problems if p.level == "warning"]
    logger.info(
        "imported %d persona(s) from %s with %d warning(s) (listed in the report)",
        len(report.personas),
        source,
        len(report.warnings),
    )
    return report


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


def _stage_persona(
    src: FaultlineSource, stage: Path, config: FoundryConfig, problems: list[Problem]
) -> tuple[Path, ImportedPersona] | None:
    raw, problem = read_json(src.contract_path)
    if problem or not isinstance(raw, dict):
        problems.append(
            problem
            or Problem(
                "error", src.contract_path, "", "a contract must be a JSON object", "fix the file"
            )
        )
        return None
    for key in sorted(set(raw) - CONTRACT_KEYS):
        problems.append(
            Problem(
                "warning",
                src.contract_path,
                f"field {key}",
                "not a PersonaContract field; ignored",
                "",
            )
        )
    try:
        slug = slugify(src.name)
    except ValueError as exc:
        problems.append(Problem("error", src.contract_path, "", str(exc)))
        return None
    items = _check_corpus(src, config, problems)
    fields = contract_fields(raw, src.name, src.handle, slug, trainable=items > 0)
    fields["positions"] = read_worldview(src.worldview_path, problems)
    try:
        contract = PersonaContract.model_validate(fields)
    except ValidationError as exc:
        problems.extend(describe_validation_errors(exc, src.contract_path, PersonaContract))
        return None
    folder = stage / slug
    _write_persona(folder, contract, src.corpus_path)
    return folder, ImportedPersona(
        slug=slug,
        name=contract.name,
        items=items,
        trainable=contract.trainable,
        positions=len(contract.positions),
        replaced=False,
    )


def _check_corpus(src: FaultlineSource, config: FoundryConfig, problems: list[Problem]) -> int:
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
        return 0
    records, found = read_corpus_file(
        src.corpus_path, csv_text_column=config.personas.csv_text_column
    )
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
    return len(records)


def _check_collisions(
    personas: list[ImportedPersona], config: FoundryConfig, force: bool, problems: list[Problem]
) -> None:
    seen: dict[str, str] = {}
    for persona in personas:
        if persona.slug in seen:
            problems.append(
                Problem(
                    "error",
                    None,
                    f"persona {persona.name!r}",
                    f"same slug {persona.slug!r} as {seen[persona.slug]!r}",
                    "rename one of them in personas.json",
                )
            )
        seen[persona.slug] = persona.name
        existing = config.persona_dir(persona.slug) / CONTRACT_FILENAME
        if not existing.is_file():
            continue
        persona.replaced = True
        try:
            previous = yaml.safe_load(existing.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            previous = None  # unreadable: nothing shows it came from Faultline, so keep it
        if not isinstance(previous, dict):
            previous = {}
        if previous.get("source") != "faultline" and not force:
            problems.append(
                Problem(
                    "error",
                    existing,
                    "",
                    f"persona {persona.slug!r} exists and was not imported from Faultline",
                    "pass --force to replace it, or rename it",
                )
            )


def _write_persona(folder: Path, contract: PersonaContract, corpus_path: Path | None) -> None:
    payload = contract.model_dump(mode="json", exclude_defaults=True)
    payload.setdefault("name", contract.name)
    payload["slug"] = contract.slug
    write_text_atomic(
        folder / CONTRACT_FILENAME,
        yaml.safe_dump(payload, sort_keys=False, allow_unicode=True, width=100),
    )
    corpus_dir = folder / CORPUS_DIRNAME
    corpus_dir.mkdir(parents=True, exist_ok=True)
    if corpus_path is not None:
        (corpus_dir / "faultline.json").write_bytes(corpus_path.read_bytes())
