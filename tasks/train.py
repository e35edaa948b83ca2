"""Adapter training: SFT on the persona's framed corpus, then DPO on preference pairs.

Public entry points: `ensure_base(config)`, `sft_examples(...)` and `base_documents(...)` (from
`foundry.training.datasets`), `resolve_backend(config)`, `train_sft(config, slug)`,
`train_dpo(config, slug)`, and the Prefect tasks `build_base_task` and `train_adapter_task`.
Each training call trains a fresh LoRA adapter in `<cache_dir>/work/<slug>/<stage>-<key>/` (TRL
checkpoints: a killed run resumes) and installs it at `config.adapter_dir(slug, stage)` only on
success (`foundry.training.trainers`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task

from foundry.config import FoundryConfig
from foundry.data.schemas import PreferencePair
from foundry.data.validation import validate_personas
from foundry.errors import raise_for_errors
from foundry.logs import get_logger, quiet_peft_deprecations
from foundry.training.artifacts import (
    AdapterArtifact,
    Backend,
    Stage,
    TrainingError,
    TrainingSummary,
    TrainProgress,
)
from foundry.training.backends import resolve_backend
from foundry.training.base_model import CHAT_TEMPLATE, LoadedBase, Progress, load_base, tiny_pin
from foundry.training.datasets import (
    SYNTHETIC_DIRNAME,
    TURNS_FILENAME,
    base_documents,
    dpo_examples,
    examples_key,
    file_digest,
    sft_examples,
)
from foundry.training.together import train_on_together
from foundry.training.trainers import (
    ADAPTER_WEIGHTS,
    check_target_modules,
    fit_and_install,
    linear_module_names,
    lora_config,
    trainer_callbacks,
    trainer_config,
)
from tasks.preferences import load_pairs

__all__ = [
    "AdapterArtifact",
    "TrainingSummary",
    "base_documents",
    "build_base_task",
    "ensure_base",
    "sft_examples",
    "train_adapter_task",
    "train_dpo",
    "train_sft",
]

logger = get_logger(__name__)


def ensure_base(
    config: FoundryConfig, progress: Progress | None = None, *, refresh: bool = False
) -> LoadedBase:
    """Load the base model; `tiny` is trained on all personas' train splits once, then kept
    while the set of personas stays the same (`base_model.tiny.rebuild`).

    Args:
        config: the project configuration.
        progress: called as `progress(step, total, loss)` while the tiny base trains.
        refresh: build the tiny base of the current corpora even if one is pinned.

    Raises:
        DataError: the persona data has errors (all of them are listed).
        BaseModelError: the base model cannot be built or loaded.
    """
    summary = validate_personas(config)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    if not config.base_model.is_tiny:
        return load_base(config)
    documents = base_documents(summary)
    pin = tiny_pin(config, [p.slug for p in summary.personas], documents)
    return load_base(config, documents, progress, pin=pin, refresh=refresh)


def train_sft(
    config: FoundryConfig,
    slug: str,
    *,
    base: LoadedBase | None = None,
    progress: TrainProgress | None = None,
    data_rev: str = "",
) -> AdapterArtifact:
    """Train persona `slug`'s SFT LoRA adapter on its framed corpus (+ synthetic turns).

    Args:
        config: the project configuration.
        slug: the persona.
        base: a freshly loaded base (its model receives the LoRA layers); loaded when None.
        progress: called as `progress(step, total, logs)` while training.
        data_rev: the data version recorded in the summary.

    Returns:
        The installed adapter at `config.adapter_dir(slug, "sft")`.

    Raises:
        TrainingDataError: empty train split or a malformed synthetic turns line.
        TrainingError: unknown LoRA target module, or an unusable backend setting.
    """
    backend = resolve_backend(config)
    summary = validate_personas(config, [slug])
    raise_for_errors(summary.problems, f"persona {slug}")
    synthetic = config.data_dir / SYNTHETIC_DIRNAME / slug / TURNS_FILENAME
    train, evaluation = sft_examples(summary.personas[0], summary.topic_split.framing, synthetic)
    if backend == "together":
        return train_on_together(
            config, slug, "sft", train, evaluation, progress=progress, data_rev=data_rev
        )
    model, tokenizer, base_id, is_tiny = _base_for_training(config, backend, base)
    check_target_modules(model, config.training.lora.target_modules, base_id)
    if backend == "unsloth":
        model = _unsloth_lora(model, config)
    key = examples_key(config.config_hash(), "sft", base_id, train, evaluation)
    return _fit(
        config, slug, "sft", backend, model, tokenizer, train, evaluation, key, is_tiny,
        base_id=base_id, progress=progress, data_rev=data_rev,
    )  # fmt: skip


def train_dpo(
    config: FoundryConfig,
    slug: str,
    *,
    base: LoadedBase | None = None,
    pairs: list[PreferencePair] | None = None,
    progress: TrainProgress | None = None,
    data_rev: str = "",
) -> AdapterArtifact:
    """Continue persona `slug`'s SFT adapter with DPO on preference pairs.

    Args:
        config: the project configuration.
        slug: the persona; its SFT adapter must exist.
        base: a freshly loaded base (its model receives the LoRA layers); loaded when None.
        pairs: preference pairs; `tasks.preferences.load_pairs(config, slug)` when None.
        progress: called as `progress(step, total, logs)` while training.
        data_rev: the data version recorded in the summary.

    Returns:
        The installed adapter at `config.adapter_dir(slug, "dpo")` (no `ref/` copy).

    Raises:
        TrainingError: the SFT adapter is missing, or an unusable backend setting.
        TrainingDataError: no train pairs, or a malformed pairs.jsonl line.
    """
    from peft import PeftModel

    backend = resolve_backend(config)
    sft_dir = config.adapter_dir(slug, "sft")
    if not (sft_dir / ADAPTER_WEIGHTS).is_file():
        raise TrainingError(
            f"DPO continues the SFT adapter, and persona {slug} has none at {sft_dir}; train it "
            f"first: `foundry train --persona {slug} --stage sft` (or `--stage all`)"
        )
    pairs = load_pairs(config, slug) if pairs is None else pairs
    train, evaluation = dpo_examples(slug, pairs)
    if backend == "together":
        return train_on_together(
            config, slug, "dpo", train, evaluation, progress=progress, data_rev=data_rev
        )
    model, tokenizer, base_id, is_tiny = _base_for_training(config, backend, base)
    with quiet_peft_deprecations():
        model = PeftModel.from_pretrained(model, sft_dir, is_trainable=True)
    key = examples_key(
        config.config_hash(), "dpo", base_id, file_digest(sft_dir / ADAPTER_WEIGHTS), train,
        evaluation,
    )  # fmt: skip
    return _fit(
        config, slug, "dpo", backend, model, tokenizer, train, evaluation, key, is_tiny,
        base_id=base_id, progress=progress, data_rev=data_rev,
    )  # fmt: skip


def _base_for_training(
    config: FoundryConfig, backend: Backend, base: LoadedBase | None
) -> tuple[Any, Any, str, bool]:
    """(model, tokenizer, base id, is_tiny) for one training call; the model is consumed."""
    if backend == "unsloth":
        model, tokenizer = _unsloth_base(config)
        return model, tokenizer, config.base_model.name, False
    base = base or ensure_base(config)
    # The tiny cache folder is named by a hash of its corpus and settings: it identifies the base.
    base_id = f"tiny:{base.path.name}" if base.is_tiny and base.path else base.name
    return base.model, base.tokenizer, base_id, base.is_tiny


def _fit(
    config: FoundryConfig,
    slug: str,
    stage: Stage,
    backend: Backend,
    model: Any,
    tokenizer: Any,
    train: list[dict],
    evaluation: list[dict],
    key: str,
    is_tiny: bool,
    *,
    base_id: str,
    progress: TrainProgress | None,
    data_rev: str,
) -> AdapterArtifact:
    """Build the TRL trainer for `stage`, train with resume, install the adapter."""
    from datasets import Dataset
    from trl import DPOTrainer, SFTTrainer

    settings = config.training.resolved(stage, is_tiny)
    work_dir = config.cache_dir / "work" / slug / f"{stage}-{key}"
    has_eval = bool(evaluation)
    if not has_eval:
        logger.warning("persona %s %s: no eval examples, so no early stopping", slug, stage)
    logger.info(
        "persona %s %s (%s): %d train / %d eval examples, effective batch %d x %d, lr %.1e",
        slug, stage, backend, len(train), len(evaluation), settings.batch_size,
        settings.gradient_accumulation, config.training.learning_rate(stage, is_tiny),
    )  # fmt: skip
    kwargs: dict[str, Any] = {
        "model": model,
        "args": trainer_config(config, stage, work_dir, is_tiny=is_tiny, has_eval=has_eval),
        "train_dataset": Dataset.from_list(train),
        "eval_dataset": Dataset.from_list(evaluation) if has_eval else None,
        "processing_class": tokenizer,
        "callbacks": trainer_callbacks(config, stage, progress, has_eval=has_eval, is_tiny=is_tiny),
    }
    with quiet_peft_deprecations():
        if stage == "dpo":  # the SFT adapter, frozen, is the reference
            trainer = DPOTrainer(ref_model=None, **kwargs)
        elif backend == "peft":
            trainer = SFTTrainer(peft_config=lora_config(config.training.lora), **kwargs)
        else:
            trainer = SFTTrainer(**kwargs)  # Unsloth has already added the LoRA layers
    fields = {
        "persona": slug,
        "stage": stage,
        "backend": backend,
        "base_model": base_id,
        "learning_rate": config.training.learning_rate(stage, is_tiny),
        "lora": config.training.lora,
        "examples_train": len(train),
        "examples_eval": len(evaluation),
        "data_rev": data_rev,
        "config_hash": config.config_hash(),
    }
    return fit_and_install(
        trainer,
        work_dir=work_dir,
        target=config.adapter_dir(slug, stage),
        tokenizer=tokenizer if is_tiny else None,
        summary_fields=fields,
    )


def _unsloth_base(config: FoundryConfig) -> tuple[Any, Any]:
    """The base through Unsloth's loader (CUDA only; 4-bit when `quantization: 4bit`)."""
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=config.base_model.name,
        max_seq_length=max(config.training.sft.max_length, config.training.dpo.max_length),
        load_in_4bit=config.base_model.quantization == "4bit",
        dtype=None,
        trust_remote_code=config.base_model.trust_remote_code,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE.replace("<|end|>", tokenizer.eos_token or "")
    return model, tokenizer


def _unsloth_lora(model: Any, config: FoundryConfig) -> Any:
    """Unsloth's LoRA wrapper with the `training.lora` settings (`all-linear` expanded)."""
    from unsloth import FastLanguageModel

    lora = config.training.lora
    targets = lora.target_modules
    if isinstance(targets, str):
        targets = linear_module_names(model)
    return FastLanguageModel.get_peft_model(
        model,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=config.training.seed,
    )


def build_base(config_path: str | None, refresh: bool = False) -> dict[str, Any]:
    """Build (tiny, first time) or load the base model; what the flow records of it."""
    from foundry.config import load_config

    started = time.perf_counter()
    base = ensure_base(load_config(Path(config_path) if config_path else None), refresh=refresh)
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
    from foundry.config import load_config

    config = load_config(Path(config_path) if config_path else None)
    trainers = {"sft": train_sft, "dpo": train_dpo}
    if stage not in trainers:
        raise TrainingError(f"unknown training stage {stage!r}; use `sft` or `dpo`")
    artifact = trainers[stage](config, slug, data_rev=data_rev)
    return artifact.model_dump(mode="json")


def train_persona(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """SFT then DPO for one persona, each on a freshly loaded base; runs in a worker process."""
    from foundry.config import load_config

    started = time.perf_counter()
    config = load_config(Path(config_path) if config_path else None)
    sft = train_sft(config, slug, data_rev=data_rev)
    dpo = train_dpo(config, slug, data_rev=data_rev)
    return {
        "sft": sft.model_dump(mode="json"),
        "dpo": dpo.model_dump(mode="json"),
        "seconds": round(time.perf_counter() - started, 2),
    }


@task(name="train-persona", task_run_name="train[{slug}]")
def train_persona_task(config_path: str | None, slug: str, data_rev: str = "") -> dict[str, Any]:
    """Train one persona's adapters in the flow's training pool (`foundry.training.pool`); its
    `seconds` are the training's own, not the wait for a free process."""
    from prefect.logging import get_run_logger

    from foundry.config import load_config
    from foundry.training.pool import run_in_pool

    limit = load_config(Path(config_path) if config_path else None).orchestration.train_timeout_s
    return run_in_pool(
        train_persona, config_path, slug, data_rev, log=get_run_logger(), timeout=limit
    )
