"""The persona-vector step: extract each persona's vector, choose its layer and strength, store it.

Public entry points: `extract_persona_vectors(config, personas)` (read the corpora, load the base
with the personas' DPO adapters, run `foundry.steering.extraction.extract_vectors`), and for the
`retrain` flow `vectors_persona` (one persona, in a worker process) and `vectors_task`. How a
vector is extracted and its strength chosen: `foundry/steering/extraction.py` and `sweep.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import FoundryConfig, load_config
from foundry.steering.extraction import Progress, VectorResult, extract_vectors
from foundry.steering.inputs import check_personas, read_steering_corpus
from foundry.training.steering_model import load_steering_model


def extract_persona_vectors(
    config: FoundryConfig,
    personas: Sequence[str] | None = None,
    *,
    data_rev: str = "",
    progress: Progress | None = None,
) -> list[VectorResult]:
    """Extract, select and store the vector of each of `personas` (default: all).

    Raises:
        SteeringSetupError: fewer than two personas, no train topics, or an unknown slug.
        LayerError: `steering.layer` is out of range for the base model.
        DataError: the persona data has errors.
    """
    corpus = read_steering_corpus(config)
    selected = list(personas) if personas else list(corpus.contracts)
    check_personas(corpus, config, selected)
    model = load_steering_model(config, selected)
    return extract_vectors(config, corpus, model, selected, data_rev=data_rev, progress=progress)


def vectors_persona(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """Extract one persona's vector (the flow's step; runs in a worker process)."""
    config = load_config(Path(config_path) if config_path else None)
    return extract_persona_vectors(config, [slug], data_rev=data_rev)[0].to_dict()


@task(name="persona-vectors", task_run_name="vectors[{slug}]")
def vectors_task(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """Extract one persona's vector where the run puts model steps (the flow's training pool, or
    Ray)."""
    from prefect.logging import get_run_logger

    from foundry.orchestration.executors import run_model_step

    outputs = [load_config(Path(config_path) if config_path else None).vector_dir(slug)]
    return run_model_step(
        "vectors", vectors_persona, config_path, slug, data_rev, log=get_run_logger(),
        outputs=outputs,
    )  # fmt: skip
