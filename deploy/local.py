"""The `local` target's server: the base model with every persona's trained adapter and vector.

`build_app(config)` loads the base once, attaches each persona's `registry.stage` adapter under
the persona's slug, registers each persona vector (`<slug>@steer` on the base, `<slug>@dpo+steer`
with the adapter) and returns the OpenAI-compatible app (`deploy.openai_server`) with its batching
engine. `foundry serve` runs it with uvicorn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy.batching import BatchingEngine
from deploy.openai_server import create_app
from foundry.config import FoundryConfig

BASE_NAME = "base"


def build_app(
    config: FoundryConfig, *, max_batch: int = 16, window_s: float = 0.01
) -> tuple[Any, BatchingEngine, dict[str, Path], set[str]]:
    """(app, engine, served adapters, registered vector names)."""
    from foundry.adapter_loading import attach_adapters
    from foundry.base_model import load_base
    from foundry.personas import discover_personas
    from foundry.steering import register_vectors
    from foundry.vector_store import META_FILE, load_persona_vector

    slugs = discover_personas(config.personas_dir)
    stage = config.registry.stage
    adapters = {
        slug: config.adapter_dir(slug, stage)
        for slug in slugs
        if (config.adapter_dir(slug, stage) / "adapter_config.json").is_file()
    }
    base = load_base(config)
    model = attach_adapters(base.model, adapters)
    names: set[str] = set()
    for slug in slugs:
        if not (config.vector_dir(slug) / META_FILE).is_file():
            continue
        vector = load_persona_vector(
            config.vector_dir(slug),
            base_model=base.identity,
            hidden_size=int(base.model.config.hidden_size),
        )
        for variant in ("steer", "dpo+steer"):
            if variant in vector.meta.get("alpha", {}):
                register_vectors(model, {f"{slug}@{variant}": vector.steer_vector(variant)})
                names.add(f"{slug}@{variant}")
    engine = BatchingEngine(model, base.tokenizer, max_batch=max_batch, window_s=window_s)
    return create_app(engine, BASE_NAME, adapters, names), engine, adapters, names
