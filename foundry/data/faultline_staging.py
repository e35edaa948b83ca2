"""One Faultline persona converted to the native layout in a staging folder, checked but not moved.

`stage_persona(src, stage, config, problems)` reads the contract, corpus, worldview and belief graph
of one `FaultlineSource`, writes `contract.yaml`, `beliefs.json` and `corpus/faultline.json` (the
corpus bytes as they were) under `stage/<slug>`, and returns the folder and its `ImportedPersona`,
or None when the contract cannot be converted; what it finds goes into `problems`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.beliefs import BELIEFS_FILENAME, load_beliefs, write_beliefs
from foundry.data.faultline_mapping import CONTRACT_KEYS, contract_fields
from foundry.data.faultline_sources import (
    FaultlineSource,
    check_corpus,
    read_json,
    read_worldview,
)
from foundry.data.personas import CONTRACT_FILENAME, CORPUS_DIRNAME, describe_validation_errors
from foundry.data.schemas import PersonaContract
from foundry.errors import Problem
from foundry.slugs import slugify


class ImportedPersona(BaseModel):
    slug: str
    name: str
    source_id: str = Field("", description="The Faultline persona id the slug comes from.")
    items: int
    trainable: bool
    positions: int
    belief_nodes: int = 0
    belief_edges: int = 0
    replaced: bool


def stage_persona(
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
        slug = slugify(src.persona_id)
    except ValueError as exc:
        problems.append(Problem("error", src.contract_path, "persona id", str(exc)))
        return None
    corpus_ids = check_corpus(src, config.personas.csv_text_column, problems)
    items = len(corpus_ids)
    fields = contract_fields(raw, src.name, src.handle, slug, items > 0, src.persona_id)
    fields["positions"] = read_worldview(src.worldview_path, problems)
    try:
        contract = PersonaContract.model_validate(fields)
    except ValidationError as exc:
        problems.extend(describe_validation_errors(exc, src.contract_path, PersonaContract))
        return None
    folder = stage / slug
    _write_persona(folder, contract, src.corpus_path)
    nodes, edges = _stage_beliefs(src, folder, set(corpus_ids), problems)
    return folder, ImportedPersona(
        slug=slug,
        name=contract.name,
        source_id=contract.source_id,
        items=items,
        trainable=contract.trainable,
        positions=len(contract.positions),
        belief_nodes=nodes,
        belief_edges=edges,
        replaced=False,
    )


def _stage_beliefs(
    src: FaultlineSource, folder: Path, corpus_ids: set[str], problems: list[Problem]
) -> tuple[int, int]:
    """Check the persona's belief graph and write it into `folder`; its node and edge counts."""
    if src.beliefs_path is None:
        return 0, 0
    graph, found = load_beliefs(src.beliefs_path, corpus_ids)
    problems.extend(found)
    if graph is None:
        return 0, 0
    if graph.persona_id and graph.persona_id != src.persona_id:
        problems.append(
            Problem(
                "warning",
                src.beliefs_path,
                "field personaId",
                f"{graph.persona_id!r} differs from the contract's {src.persona_id!r}",
                "check that the file belongs to this persona",
            )
        )
    write_beliefs(folder / BELIEFS_FILENAME, graph)
    return len(graph.nodes), len(graph.edges)


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
