"""Prefect tasks of the training stage: build the base once, then train each persona's adapters.

Public entry points: `build_base_task` and `train_persona_task` (the retrain flow's, run in its
process pool by `build_base` and `train_persona`), and `train_adapter_task` (one stage of one
persona). The training itself is `foundry.training.adapter_training` (`train_sft`, `train_dpo`);
the base is `foundry.training.base_model.ensure_base`; the preference pairs DPO trains on come from
`foundry.synthesis.pair_sets.load_pairs`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import FoundryConfig, load_config
from foundry.synthesis.pair_sets import load_pairs
from foundry.training.adapter_training import train_dpo, train_sft, work_root
from foundry.training.artifacts import TrainingError
from foundry.training.base_model import ensure_base


def _config(config_path: str | None) -> FoundryConfig:
    return load_config(Path(config_path) if config_path else None)


def build_base(config_path: str | None, refresh: bool = False) -> dict[str, Any]:
    """Build (tiny, first time) or load the base model; what the flow records of it."""
    started = time.perf_counter()
    base = ensure_base(_config(config_path), refresh=refresh)
    return {
        "name": base.name,
        "path": str(base.path) if base.path else None,
        "is_tiny": base.is_tiny,
        "seconds": round(time.perf_counter() - started, 2),
    }


@task(name="build-base")
def build_base_task(config_path: str | None, refresh: bool = False) -> dict[str, Any]:
    """Build or load the base model once, before per-persona work (in the flow's process pool
    when it has one, on every core)."""
    import os

    from prefect.logging import get_run_logger

    from foundry.training.pool import run_in_pool

    return run_in_pool(
        build_base, config_path, refresh, log=get_run_logger(), threads=os.cpu_count() or 1
    )


@task(name="train-adapter")
def train_adapter_task(
    config_path: str | None, slug: str, stage: str, data_rev: str = ""
) -> dict[str, Any]:
    """Train persona `slug`'s `stage` (`sft` or `dpo`) adapter; return the artifact as a dict."""
    config = _config(config_path)
    if stage == "sft":
        artifact = train_sft(config, slug, data_rev=data_rev)
    elif stage == "dpo":
        artifact = train_dpo(config, slug, pairs=load_pairs(config, slug), data_rev=data_rev)
    else:
        raise TrainingError(f"unknown training stage {stage!r}; use `sft` or `dpo`")
    return artifact.model_dump(mode="json")


def train_persona(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """SFT then DPO for one persona, each on a freshly loaded base; runs in a worker process."""
    started = time.perf_counter()
    config = _config(config_path)
    sft = train_sft(config, slug, data_rev=data_rev)
    dpo = train_dpo(config, slug, pairs=load_pairs(config, slug), data_rev=data_rev)
    return {
        "sft": sft.model_dump(mode="json"),
        "dpo": dpo.model_dump(mode="json"),
        "seconds": round(time.perf_counter() - started, 2),
    }


@task(name="train-persona", task_run_name="train[{slug}]")
def train_persona_task(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """Train one persona's adapters where the run puts model steps (the flow's training pool, or
    Ray: `foundry.orchestration.executors`); its `seconds` are the training's own, not the wait
    for a free process."""
    from prefect.logging import get_run_logger

    from foundry.orchestration.executors import run_model_step

    config = _config(config_path)
    return run_model_step(
        "train", train_persona, config_path, slug, data_rev, log=get_run_logger(),
        timeout=config.orchestration.train_timeout_s,
        outputs=[config.adapter_dir(slug, "sft"), config.adapter_dir(slug, "dpo")],
        checkpoints=work_root(config, slug),
    )  # fmt: skip
