"""Making and re-making derived personas: `foundry merge` and the retrain flow's `merge` step.

A derived persona (`foundry.data.derived`) is its sources' adapters combined with PEFT
(`foundry.training.merging.merge_adapters`) on a freshly loaded base: the sources' `stage`
adapters become its `dpo` adapter, their `sft` adapters its `sft` adapter (when every source has
one), each with a `training_summary.json` (backend `peft`, no steps) and `merge.json` (sources,
weights, digests). When every source has a persona vector, their weighted sum is its vector.

Public entry points: `parse_source` (`slug:weight`), `blend_sources` (every check of a blend,
before any work), `create_derived` (the CLI: contract, then merge), `merge_derived` (re-merge from
the contract; the flow's task), `merge_key` (the flow's cache key: the sources' adapter digests,
the contract and the code).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.data.derived import compose_contract, write_contract
from foundry.data.personas import discover_personas, require_contract, select_personas
from foundry.data.schemas import DerivedFrom, DerivedMethod, PersonaContract
from foundry.data.versions import persona_content_hash
from foundry.errors import FoundryError
from foundry.logs import get_logger
from foundry.orchestration.run_keys import code_version, digest
from foundry.slugs import check_slug
from foundry.steering.algebra import blend_persona_vectors
from foundry.steering.store import META_FILE, TENSORS_FILE, load_persona_vector, save_persona_vector
from foundry.training.artifacts import SUMMARY_FILENAME, TrainingSummary
from foundry.training.datasets import file_digest
from foundry.training.merging import MergeSource, adapter_lora, merge_adapters
from foundry.training.trainers import ADAPTER_WEIGHTS

logger = get_logger(__name__)

DIGEST_CHARS = 12


class MergeError(FoundryError):
    """A blend cannot be made: it names the input and how to fix it."""


def parse_source(spec: str) -> tuple[str, float]:
    """`jonah-okafor:0.7` -> ("jonah-okafor", 0.7).

    Raises:
        MergeError: not `SLUG:WEIGHT`, a slug that is not `[a-z0-9-]+`, or a weight that is not a
            number.
    """
    slug, sep, weight = spec.partition(":")
    if not sep or not slug or not weight:
        raise MergeError(f"--from {spec!r} is not SLUG:WEIGHT; write e.g. --from jonah-okafor:0.7")
    try:
        value = float(weight)
    except ValueError:
        raise MergeError(
            f"--from {spec!r}: the weight {weight!r} is not a number; write e.g. {slug}:0.7"
        ) from None
    try:
        return check_slug(slug), value
    except ValueError as exc:
        raise MergeError(f"--from {spec!r}: {exc}") from None


def blend_sources(
    config: FoundryConfig,
    specs: Sequence[str],
    method: DerivedMethod,
    density: float | None,
    stage: str = "dpo",
) -> list[tuple[PersonaContract, float]]:
    """Every check of a blend before any work: the sources' contracts and weights.

    Raises:
        MergeError: a malformed `slug:weight`, fewer than two sources, a repeated source, an
            unknown persona, a derived source, a missing adapter (with the command that trains
            it), or weights the method cannot use (a negative weight with TIES).
    """
    parsed = [parse_source(spec) for spec in specs]
    slugs = [slug for slug, _ in parsed]
    if len(parsed) < 2:
        raise MergeError(
            f"a blend needs at least two sources, got {len(parsed)}; repeat --from, e.g. "
            "--from jonah-okafor:0.7 --from priya-castellanos:0.3"
        )
    repeated = sorted({s for s in slugs if slugs.count(s) > 1})
    if repeated:
        raise MergeError(f"source {', '.join(repeated)} is given twice; name each source once")
    try:
        DerivedFrom(
            method=method, density=density, stage=stage,
            sources=[{"slug": s, "weight": w} for s, w in parsed],
        )  # fmt: skip
    except ValidationError as exc:
        reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise MergeError(f"cannot blend with {method}: {reasons}") from None
    select_personas(discover_personas(config.personas_dir), slugs, config.personas_dir)
    contracts = [require_contract(config.persona_dir(slug)) for slug in slugs]
    for contract in contracts:
        if contract.is_derived:
            raise MergeError(
                f"{contract.slug} is itself a derived persona; blend its sources directly"
            )
        adapter = config.adapter_dir(contract.slug, stage)
        if not (adapter / ADAPTER_WEIGHTS).is_file():
            raise MergeError(
                f"{contract.slug} has no {stage} adapter in {adapter}; train it first: "
                f"`foundry train --persona {contract.slug} --stage {stage}` (or `foundry run`)"
            )
    return list(zip(contracts, [w for _, w in parsed], strict=True))


def create_derived(
    config: FoundryConfig,
    specs: Sequence[str],
    *,
    method: DerivedMethod,
    density: float | None,
    slug: str,
    name: str = "",
    stage: str = "dpo",
    data_rev: str = "",
) -> dict[str, Any]:
    """Check the blend, write the derived persona's contract, then merge its adapters.

    Raises:
        MergeError: see `blend_sources`; `slug` names an existing persona that is not derived.
        TrainingError: PEFT cannot combine the adapters.
    """
    sources = blend_sources(config, specs, method, density, stage)
    slug = check_slug(slug)
    folder = config.persona_dir(slug)
    if folder.is_dir():
        existing = require_contract(folder)
        if not existing.is_derived:
            raise MergeError(
                f"{slug} is a persona with data of its own ({folder}); pick another --as"
            )
    versions = {
        c.slug: file_digest(config.adapter_dir(c.slug, stage) / ADAPTER_WEIGHTS)[:DIGEST_CHARS]
        for c, _ in sources
    }
    contract = compose_contract(sources, name, slug, method, density, versions)
    contract.derived_from.stage = stage  # type: ignore[union-attr]
    path = write_contract(folder, contract)
    result = merge_derived(config, slug, data_rev=data_rev)
    return {**result, "contract": str(path)}


def merge_derived(config: FoundryConfig, slug: str, *, data_rev: str = "") -> dict[str, Any]:
    """Merge derived persona `slug`'s adapters (and vector) from its contract's sources.

    Returns:
        {"persona", "adapters": {stage: folder}, "sources": {slug: sha256}, "vector": folder or
        "", "notes": [...], "seconds"}.

    Raises:
        MergeError: `slug` is not a derived persona, or a source has no adapter.
        TrainingError: PEFT cannot combine the adapters.
    """
    from foundry.training.base_model import ensure_base

    started = time.perf_counter()
    contract = require_contract(config.persona_dir(slug))
    blend = contract.derived_from
    if blend is None:
        raise MergeError(f"{slug} is not a derived persona (its contract has no derived_from)")
    notes: list[str] = []
    stages = {"dpo": blend.stage}
    if all(_has_adapter(config, s.slug, "sft") for s in blend.sources):
        stages["sft"] = "sft"
    else:
        notes.append("no sft variant: not every source has an sft adapter")
    adapters, digests = {}, {}
    for target, source_stage in stages.items():
        sources = [
            MergeSource(config.adapter_dir(s.slug, source_stage), s.weight) for s in blend.sources
        ]
        for source, spec in zip(sources, blend.sources, strict=True):
            if not (source.path / ADAPTER_WEIGHTS).is_file():
                raise MergeError(
                    f"source {spec.slug} of {slug} has no {source_stage} adapter in {source.path};"
                    f" train it: `foundry train --persona {spec.slug} --stage {source_stage}`"
                )
        base = ensure_base(config)
        out = merge_adapters(
            base.model, sources, blend.method, config.adapter_dir(slug, target),
            density=blend.density, tokenizer=base.tokenizer if base.is_tiny else None,
        )  # fmt: skip
        _write_summary(config, slug, target, blend, data_rev, time.perf_counter() - started)
        adapters[target] = str(out)
        if target == "dpo":
            digests = {s.slug: file_digest(p.path / ADAPTER_WEIGHTS) for s, p in
                       zip(blend.sources, sources, strict=True)}  # fmt: skip
    vector = compose_vector(config, slug, blend, notes)
    for note in notes:
        logger.info("merge %s: %s", slug, note)
    return {
        "persona": slug,
        "adapters": adapters,
        "sources": digests,
        "vector": str(vector) if vector else "",
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _has_adapter(config: FoundryConfig, slug: str, stage: str) -> bool:
    return (config.adapter_dir(slug, stage) / ADAPTER_WEIGHTS).is_file()


def _write_summary(
    config: FoundryConfig, slug: str, stage: str, blend: DerivedFrom, data_rev: str, seconds: float
) -> None:
    """The `training_summary.json` registration reads: what the first source was trained with,
    no steps of its own (the sources and their digests are in `merge.json`)."""
    first = config.adapter_dir(blend.sources[0].slug, stage if stage == "sft" else blend.stage)
    trained = TrainingSummary.model_validate_json((first / SUMMARY_FILENAME).read_text())
    summary = trained.model_copy(
        update={
            "persona": slug, "stage": stage, "backend": "peft", "steps": 0, "train_tokens": 0,
            "seconds": round(seconds, 2), "train_losses": [], "eval_losses": [],
            "best_eval_loss": None, "resumed_from_step": None, "examples_train": 0,
            "examples_eval": 0, "data_rev": data_rev or trained.data_rev,
            "config_hash": config.config_hash(), "job_id": None, "experts": None,
            "lora": adapter_lora(config.adapter_dir(slug, stage), trained.lora),
        }
    )  # fmt: skip
    out = config.adapter_dir(slug, stage) / SUMMARY_FILENAME
    write_text_atomic(out, summary.model_dump_json(indent=2) + "\n")


def compose_vector(
    config: FoundryConfig, slug: str, blend: DerivedFrom, notes: list[str]
) -> Path | None:
    """The weighted sum of the sources' persona vectors as `slug`'s vector, when every source
    has one; else None, with a note (the folder of an older composition is left as it was)."""
    folders = {s.slug: config.vector_dir(s.slug) for s in blend.sources}
    missing = [
        s
        for s, f in folders.items()
        if not (f / META_FILE).is_file() or not (f / TENSORS_FILE).is_file()
    ]
    if missing:
        have = "has" if len(missing) == 1 else "have"
        notes.append(f"no composed persona vector: {', '.join(missing)} {have} no vector")
        return None
    vectors = [(load_persona_vector(folders[s.slug]), s.weight) for s in blend.sources]
    blended = blend_persona_vectors(vectors, slug, blend.label())
    return save_persona_vector(blended, config.vector_dir(slug), {})


def merge_key(config: FoundryConfig, slug: str, base: str) -> str:
    """The flow's `merge` step key: the sources' installed adapters (digests of every stage
    the merge reads), the derived persona's contract, the base and the code."""
    contract = require_contract(config.persona_dir(slug))
    blend = contract.derived_from
    if blend is None:
        raise MergeError(f"{slug} is not a derived persona (its contract has no derived_from)")
    adapters = [
        file_digest(path) if (path := config.adapter_dir(s.slug, stage) / ADAPTER_WEIGHTS).is_file()
        else "absent"
        for s in blend.sources
        for stage in dict.fromkeys([blend.stage, "sft"])
    ]  # fmt: skip
    vectors = [
        file_digest(path) if (path := config.vector_dir(s.slug) / TENSORS_FILE).is_file()
        else "absent"
        for s in blend.sources
    ]  # fmt: skip
    return digest(
        "merge", code_version(), persona_content_hash(config.persona_dir(slug)), adapters,
        vectors, base,
    )  # fmt: skip
