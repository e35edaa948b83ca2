"""The retrain plan: check that a run can go through before it starts, and key every step.

Public entry point: `plan_retrain(config, settings, ...)` returns a `RetrainPlan` (the personas to
run, their data hashes and per-step cache keys, `foundry.orchestration.run_keys`), raising
`PlanError` (or the stage's own error) before anything is written when the run could not finish:
a broken persona, DVC not initialised, no key for the asked provider, a deployment target that
does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from foundry.config import FoundryConfig, Settings
from foundry.data.validation import ValidationSummary, validate_personas
from foundry.data.versions import DVC_FILE, persona_content_hash
from foundry.errors import DataError, FoundryError, raise_for_errors
from foundry.orchestration.run_keys import (
    PersonaKeys,
    base_key,
    code_version,
    evaluation_key,
    file_hash,
    persona_keys,
)
from foundry.synthesis.providers import resolve_provider_name
from foundry.training.datasets import base_documents
from foundry.training.tiny_cache import tiny_pin
from registry.tracking import tracking_uri


class PlanError(FoundryError):
    """The run cannot start: it names what is missing and how to fix it."""


class RetrainPlan(BaseModel):
    personas: list[str] = Field(description="Trainable personas this run builds, in data order.")
    peers: list[str] = Field(
        default_factory=list,
        description="Trainable personas not selected: evaluated beside the selected ones when "
        "their adapters are current, since attribution needs every persona.",
    )
    not_trainable: dict[str, str] = Field(
        default_factory=dict, description="Selected personas left out, with the reason."
    )
    derived: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Selected derived personas (never trained: merged from their sources after "
        "training, then evaluated and registered), with their sources.",
    )
    stats: dict[str, dict[str, Any]] = Field(default_factory=dict)
    content_hashes: dict[str, str] = Field(default_factory=dict)
    provider: str
    base_pin: str = ""
    base_key: str
    keys: dict[str, PersonaKeys] = Field(default_factory=dict)
    code_version: str
    tracking_uri: str

    def evaluation_key(self, config: FoundryConfig, slugs: Sequence[str]) -> str:
        return evaluation_key(config, {s: self.keys[s].model for s in slugs}, self.base_key)


def plan_retrain(
    config: FoundryConfig,
    settings: Settings,
    *,
    personas: Sequence[str] | None = None,
    provider: str = "",
    deploy: bool = False,
) -> RetrainPlan:
    """Check everything a retrain needs, then key each persona's steps.

    Raises:
        PlanError: DVC is not initialised, no persona is trainable, or `deploy` was asked and
            no deployment target can serve.
        DataError: a persona or the topics file has errors (all are listed).
        SynthesisError: the provider is unknown, or anthropic has no API key.
    """
    _require_dvc(config)
    summary = validate_personas(config, list(personas) if personas else None)
    if not summary.personas:
        raise DataError(
            f"no personas in {config.personas_dir}; run `foundry init` (sample data) or "
            "`foundry import faultline DIR`"
        )
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    if deploy:
        from deploy import get_target

        get_target(config.deploy.target, config).close()  # credentials and settings, now
    name = resolve_provider_name(config, settings, provider)
    trainable, left_out = _split_trainable(summary)
    derived = {
        p.slug: [s.slug for s in p.contract.derived_from.sources]  # type: ignore[union-attr]
        for p in summary.derived
    }
    if not trainable and not derived:
        raise PlanError(
            f"no trainable persona among {', '.join(left_out)}: "
            + "; ".join(f"{slug}: {why}" for slug, why in left_out.items())
        )
    everyone = validate_personas(config) if personas else summary
    pin = ""
    if config.base_model.is_tiny:
        pin = tiny_pin(config, [p.slug for p in everyone.personas], base_documents(everyone))
    base = base_key(config, pin)
    topics = file_hash(config.topics_file)
    uri = tracking_uri(config)
    peers = [
        p.slug
        for p in everyone.personas
        if p.slug not in trainable and p.slug not in left_out and not p.has_errors
        and p.contract is not None and p.contract.trainable and p.items
    ]  # fmt: skip
    hashes = {
        slug: persona_content_hash(config.persona_dir(slug))
        for slug in [*trainable, *peers, *derived]
    }
    keys = {
        slug: persona_keys(
            config,
            hashes[slug],
            topics_hash=topics,
            provider=name,
            model=base if name == "local" else "",
            base=base,
            tracking=uri,
        )  # fmt: skip
        for slug in [*trainable, *peers]
    }
    stats = {p.slug: p.stats.model_dump() for p in summary.personas}
    return RetrainPlan(
        personas=trainable, peers=peers, not_trainable=left_out, derived=derived, stats=stats,
        content_hashes=hashes,
        provider=name, base_pin=pin, base_key=base, keys=keys, code_version=code_version(),
        tracking_uri=uri,
    )  # fmt: skip


def _require_dvc(config: FoundryConfig) -> None:
    if not (config.root / ".dvc").is_dir() or not (config.root / DVC_FILE).is_file():
        raise PlanError(
            f"DVC is not initialised in {config.root} (no .dvc/ or {DVC_FILE}); run "
            "`foundry init` there first: it sets up DVC and versions the data"
        )


def _split_trainable(summary: ValidationSummary) -> tuple[list[str], dict[str, str]]:
    """The trainable personas, and the others with the reason each is left out."""
    trainable, left_out = [], {}
    for persona in summary.personas:
        if persona.contract is None or not persona.contract.trainable:
            left_out[persona.slug] = "contract marks it not trainable"
        elif not persona.items:
            left_out[persona.slug] = "no corpus items"
        else:
            trainable.append(persona.slug)
    return trainable, left_out
