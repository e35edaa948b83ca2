"""Derived personas: personas blended from others' adapters (`foundry merge`, issue 22).

A derived persona has a contract like any other, marked by `derived_from` (its sources, their
weights and the merge method), and no corpus: it is never trained, only re-merged from its
sources' adapters. Its contract is composed from its sources' (`compose_contract`): the positions
of the source with the largest positive weight win; a source with a negative weight (subtracted)
contributes no position.

Public entry points: `compose_contract`, `write_contract`, `check_sources` (the validation of a
derived persona's sources), `landing_shares` (the share each source's weight would predict).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from foundry.atomic import write_text_atomic
from foundry.data.personas import CONTRACT_FILENAME, CORPUS_DIRNAME, load_contract
from foundry.data.schemas import (
    DerivedFrom,
    DerivedMethod,
    DerivedSource,
    PersonaContract,
    Position,
)
from foundry.data.textnorm import words
from foundry.errors import Problem


def compose_contract(
    sources: Sequence[tuple[PersonaContract, float]],
    name: str,
    slug: str,
    method: DerivedMethod,
    density: float | None = None,
    versions: dict[str, str] | None = None,
) -> PersonaContract:
    """The contract of a persona blended from `sources` (contract, weight).

    Args:
        sources: the source personas' contracts and their weights (negative: subtracted).
        name: the derived persona's name; empty: "Blend of A and B".
        slug: its slug (folder and model name).
        method: the merge method (`foundry.training.merging`).
        density: the share TIES/DARE keep of each source's weights.
        versions: source slug -> its registered version (`v3`) or adapter digest prefix.

    Returns:
        A contract with `trainable: false` and `derived_from` set: the text fields of the source
        with the largest positive weight, a summary that says what it blends, and for each claim
        (matched by position id, else by normalised claim text) the stance of the source with the
        largest positive weight that has it.

    Raises:
        ValueError: the blend is invalid (fewer than two sources, a repeated source, a negative
            weight with TIES, no positive weight, a pruning method without a density).
    """
    versions = versions or {}
    derived = DerivedFrom(
        method=method,
        density=density,
        sources=[
            DerivedSource(slug=c.slug, weight=w, version=versions.get(c.slug, ""))
            for c, w in sources
        ],
    )
    kept = sorted(((c, w) for c, w in sources if w > 0), key=lambda cw: -cw[1])
    lead = kept[0][0]
    blend = " and ".join(f"{c.name} ({w:g})" for c, w in sources if w > 0)
    without = [c.name for c, w in sources if w < 0]
    summary = f"Blend of {blend}, {method}" + (
        f", without {' and '.join(n + chr(39) + 's' for n in without)} stance" if without else ""
    )
    return PersonaContract(
        name=name or f"Blend of {' and '.join(c.name for c, _ in kept)}",
        slug=slug,
        summary=f"{summary}. {lead.summary}".strip(),
        personality=lead.personality,
        bias=lead.bias,
        stakes=lead.stakes,
        epistemology=lead.epistemology,
        time_horizon=lead.time_horizon,
        flip_conditions=list(lead.flip_conditions),
        evidence_policy=lead.evidence_policy,
        reasoning_method=lead.reasoning_method,
        constitution=list(dict.fromkeys(p for c, _ in kept for p in c.constitution)),
        style=lead.style,
        positions=_composed_positions([c for c, _ in kept]),
        trainable=False,
        derived_from=derived,
    )


def _composed_positions(contracts: Sequence[PersonaContract]) -> list[Position]:
    """Each claim once, from the first contract (largest weight first) that states it."""
    positions: list[Position] = []
    ids: set[str] = set()
    claims: set[str] = set()
    for contract in contracts:
        for position in contract.positions:
            claim = " ".join(words(position.claim))  # case, spacing and punctuation aside
            if (position.id and position.id in ids) or claim in claims:
                continue
            positions.append(position.model_copy())
            ids.add(position.id)
            claims.add(claim)
    return positions


def write_contract(persona_dir: Path, contract: PersonaContract) -> Path:
    """Write `contract` as `<persona_dir>/contract.yaml` (atomically); its path."""
    payload = contract.model_dump(mode="json", exclude_defaults=True)
    payload["slug"] = contract.slug
    path = persona_dir / CONTRACT_FILENAME
    write_text_atomic(path, yaml.safe_dump(payload, sort_keys=False, allow_unicode=True, width=100))
    return path


def check_sources(
    slug: str, derived: DerivedFrom, personas_dir: Path, available: Sequence[str]
) -> list[Problem]:
    """The problems of derived persona `slug`'s sources: one that does not exist, one that is
    itself derived (blend its sources instead), or a corpus folder beside it (ignored)."""
    path = personas_dir / slug / CONTRACT_FILENAME
    problems = []
    for source in derived.sources:
        where = f"field derived_from.sources[{source.slug}]"
        if source.slug not in available:
            problems.append(
                Problem(
                    "error",
                    path,
                    where,
                    f"source persona {source.slug!r} does not exist in {personas_dir}",
                    f"add data/personas/{source.slug}/ or remove it from `derived_from` (or "
                    f"delete the derived persona's folder {path.parent})",
                )  # fmt: skip
            )
            continue
        found, _ = load_contract(personas_dir / source.slug)
        if found is not None and found.is_derived:
            problems.append(
                Problem(
                    "error",
                    path,
                    where,
                    f"source {source.slug!r} is itself a derived persona",
                    "blend its sources directly (`foundry merge --from SLUG:WEIGHT ...`)",
                )  # fmt: skip
            )
    if (personas_dir / slug / CORPUS_DIRNAME).is_dir():
        problems.append(
            Problem(
                "warning",
                personas_dir / slug / CORPUS_DIRNAME,
                "",
                "a derived persona is never trained: its corpus is ignored",
                "remove the corpus folder, or remove `derived_from` to train it as a persona",
            )  # fmt: skip
        )
    return problems


def landing_shares(derived: DerivedFrom) -> dict[str, float]:
    """Source -> w_i / sum |w|: the share of the blend each source's weight predicts (negative
    for a subtracted source)."""
    total = sum(abs(s.weight) for s in derived.sources)
    return {s.slug: s.weight / total for s in derived.sources}
