"""Finding personas under `data/personas/` and reading their contracts and the debate topics.

A persona is a folder `<slug>/` holding `contract.yaml` and `corpus/`. The folder name is the slug
unless the contract sets `slug:` explicitly (then they must agree).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from foundry.data.corpus_formats import decode_utf8
from foundry.data.schemas import PersonaContract, TopicFile
from foundry.errors import DataError, Problem
from foundry.slugs import SLUG_PATTERN

CONTRACT_FILENAME = "contract.yaml"
CORPUS_DIRNAME = "corpus"


def discover_personas(personas_dir: Path) -> list[str]:
    """Slugs of the persona folders (hidden and staging folders are ignored), sorted."""
    if not personas_dir.is_dir():
        return []
    return sorted(
        p.name for p in personas_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )


def select_personas(available: list[str], include: list[str], personas_dir: Path) -> list[str]:
    """Restrict `available` to `include` (all when empty); an unknown slug is an error."""
    if not include:
        return available
    unknown = [slug for slug in include if slug not in available]
    if unknown:
        hints = [
            f"`{slug}`"
            + (
                f" (did you mean `{m[0]}`?)"
                if (m := difflib.get_close_matches(slug, available, 1))
                else ""
            )
            for slug in unknown
        ]
        raise DataError(
            f"unknown persona {', '.join(hints)} in {personas_dir}; available: "
            f"{', '.join(available) or 'none (run `foundry init` or `foundry import faultline`)'}"
        )
    return [slug for slug in available if slug in include]


def load_contract(persona_dir: Path) -> tuple[PersonaContract | None, list[Problem]]:
    """Read and validate `<persona_dir>/contract.yaml`; each problem names the field and fix."""
    path = persona_dir / CONTRACT_FILENAME
    folder = persona_dir.name
    if not SLUG_PATTERN.fullmatch(folder):
        return None, [
            Problem(
                "error",
                persona_dir,
                "",
                f"folder name {folder!r} is not a slug",
                "rename it to lowercase letters, digits and dashes",
            )
        ]
    if not path.is_file():
        return None, [
            Problem(
                "error",
                path,
                "",
                "missing contract",
                "add contract.yaml (see examples/sample/personas/*/contract.yaml)",
            )
        ]
    raw, problem = read_yaml(path)
    if problem:
        return None, [problem]
    if not isinstance(raw, dict):
        return None, [
            Problem(
                "error",
                path,
                "",
                "the contract must be a YAML mapping of fields",
                "start with `name: ...`",
            )
        ]
    raw.setdefault("slug", folder)
    try:
        contract = PersonaContract.model_validate(raw)
    except ValidationError as exc:
        return None, describe_validation_errors(exc, path, PersonaContract)
    problems = []
    if contract.slug != folder:
        problems.append(
            Problem(
                "error",
                path,
                "field slug",
                f"slug {contract.slug!r} differs from the folder name {folder!r}",
                "remove `slug:` or rename the folder to match",
            )
        )
    problems.extend(_contract_warnings(contract, path))
    return contract, problems


def _contract_warnings(contract: PersonaContract, path: Path) -> list[Problem]:
    problems = []
    if contract.reasoning_method is None:
        problems.append(
            Problem(
                "warning",
                path,
                "field reasoning_method",
                "missing",
                "add {name, description, steps}: it makes the persona reason "
                "differently, not just sound different",
            )
        )
    if not contract.constitution:
        problems.append(
            Problem(
                "warning",
                path,
                "field constitution",
                "missing",
                "add a list of principles used to critique generated turns",
            )
        )
    if not contract.positions:
        problems.append(
            Problem(
                "warning",
                path,
                "field positions",
                "no positions",
                "add claims with stance and confidence: stance metrics need them",
            )
        )
    return problems


def load_topics(path: Path) -> tuple[list, list[Problem]]:
    """Read `topics.yaml` ({topics: [{id, prompt, tags}]}); a missing file is a warning."""
    if not path.is_file():
        return [], [
            Problem(
                "warning",
                path,
                "",
                "no debate topics file",
                "add topics.yaml with `topics: [{id, prompt, tags}]`",
            )
        ]
    raw, problem = read_yaml(path)
    if problem:
        return [], [problem]
    try:
        return TopicFile.model_validate(raw).topics, []
    except ValidationError as exc:
        return [], describe_validation_errors(exc, path, TopicFile)


def require_contract(persona_dir: Path) -> PersonaContract:
    """Load a contract or raise one `DataError` listing its errors."""
    contract, problems = load_contract(persona_dir)
    errors = [p for p in problems if p.level == "error"]
    if contract is None or errors:
        raise DataError("\n".join(str(p) for p in errors))
    return contract


def read_yaml(path: Path) -> tuple[Any, Problem | None]:
    """The parsed YAML file, or a `Problem` naming the line when it is not UTF-8 or not YAML."""
    text, problem = decode_utf8(path)
    if problem:
        return None, problem
    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        return None, Problem(
            "error",
            path,
            where,
            f"not valid YAML ({getattr(exc, 'problem', exc)})",
            "fix the YAML syntax (quote text that contains `: ` or `#`)",
        )


def describe_validation_errors(
    exc: ValidationError, path: Path, model: type[BaseModel]
) -> list[Problem]:
    """One `Problem` per pydantic error, with the field path and a fix."""
    problems = []
    for error in exc.errors():
        field = _dotted(error["loc"])
        if error["type"] == "extra_forbidden":
            valid = _fields_at(model, error["loc"][:-1])
            close = difflib.get_close_matches(str(error["loc"][-1]), valid, 1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            problems.append(
                Problem(
                    "error",
                    path,
                    f"field {field}",
                    "unknown field",
                    f"{hint}remove it or use one of: {', '.join(valid)}",
                )
            )
        elif error["type"] == "missing":
            problems.append(
                Problem(
                    "error",
                    path,
                    f"field {field}",
                    "required field is missing",
                    f"add `{error['loc'][-1]}:`",
                )
            )
        else:
            problems.append(
                Problem(
                    "error",
                    path,
                    f"field {field}",
                    f"{error['msg']} (got {error.get('input')!r})",
                    "correct the value",
                )
            )
    return problems


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = next((a for a in inner if issubclass(a, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)
