"""Lineage of derived personas in the registry (issue 22): which source versions a blend is.

Every registered version carries `adapter_sha256` (the digest of its adapter weights), so a
derived persona's version can name the registered versions its sources' merged adapters are:
`derived_from` = `jonah-okafor@v3:0.7,priya-castellanos@v2:0.3 ties d=0.5` (a source adapter
never registered is named by its digest's first 12 characters).

Public entry points: `ADAPTER_DIGEST_TAG`, `DERIVED_TAG`, `adapter_tags`, `derived_tags`.
"""

from __future__ import annotations

import json
from typing import Any

from foundry.config import FoundryConfig
from foundry.data.personas import load_contract
from foundry.training.datasets import file_digest
from foundry.training.merging import MERGE_FILENAME
from foundry.training.trainers import ADAPTER_WEIGHTS
from registry.champions import DERIVED_TAG
from registry.models import list_versions

ADAPTER_DIGEST_TAG = "adapter_sha256"
DIGEST_CHARS = 12

__all__ = ["ADAPTER_DIGEST_TAG", "DERIVED_TAG", "adapter_tags", "derived_tags"]


def adapter_tags(config: FoundryConfig, slug: str, stage: str) -> dict[str, str]:
    """`adapter_sha256` of the persona's `stage` adapter weights."""
    weights = config.adapter_dir(slug, stage) / ADAPTER_WEIGHTS
    return {ADAPTER_DIGEST_TAG: file_digest(weights)} if weights.is_file() else {}


def derived_tags(config: FoundryConfig, client: Any, slug: str, stage: str) -> dict[str, str]:
    """`derived_from` for a derived persona's version (empty for any other persona): its sources
    with the registered version whose adapter is the one merged (from `merge.json`)."""
    contract, _ = load_contract(config.persona_dir(slug))
    if contract is None or contract.derived_from is None:
        return {}
    lineage_file = config.adapter_dir(slug, stage) / MERGE_FILENAME
    merged = json.loads(lineage_file.read_text()) if lineage_file.is_file() else {"sources": []}
    digests = [source.get("sha256", "") for source in merged["sources"]]
    sources = []
    for source, sha in zip(contract.derived_from.sources, digests, strict=False):
        version = _registered_version(client, source.slug, sha) or sha[:DIGEST_CHARS]
        sources.append(source.model_copy(update={"version": version}))
    blend = contract.derived_from.model_copy(update={"sources": sources})
    return {DERIVED_TAG: blend.label()}


def _registered_version(client: Any, slug: str, sha: str) -> str:
    """`v<n>` of the newest version of `slug` whose adapter has digest `sha`; empty if none."""
    if not sha:
        return ""
    found = [
        int(v.version) for v in list_versions(client, slug) if v.tags.get(ADAPTER_DIGEST_TAG) == sha
    ]
    return f"v{max(found)}" if found else ""
