"""Adapter training runs: SFT on the persona's framed corpus, then DPO on preference pairs (both
with the position rows of `foundry.data.stance` unless `training.position_rows` is off).

Public entry points: `train_sft(config, slug)` and `train_dpo(config, slug, pairs=...)`. Each
trains a fresh LoRA adapter in `<cache_dir>/work/<slug>/<stage>-<key>/` (TRL checkpoints: a killed
run resumes) and installs it at `config.adapter_dir(slug, stage)` only on success
(`foundry.training.trainers`). The backend (`peft`, `unsloth` or `together`) comes from
`foundry.training.backends`; the preference pairs come from the caller, since finding them (the
persona's `pairs.jsonl`, else cross-persona pairs) is synthesis's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.data.schemas import PreferencePair
from foundry.data.stance import PositionRow, first_prompt_each
from foundry.data.validation import ValidationSummary, validate_personas
from foundry.errors import raise_for_errors
from foundry.logs import get_logger, quiet_peft_warnings
from foundry.training.artifacts import (
    AdapterArtifact,
    Backend,
    Stage,
    TrainingError,
    TrainProgress,
)
from foundry.training.backends import resolve_backend
from foundry.training.base_model import LoadedBase, ensure_base
from foundry.training.config import TINY
from foundry.training.datasets import (
    SYNTHETIC_DIRNAME,
    TURNS_FILENAME,
    dpo_examples,
    examples_key,
    file_digest,
    sft_examples,
    taught_position_rows,
)
from foundry.training.experts import (
    EXPERTS,
    REASONING,
    STYLE,
    combine_experts,
    expert_path,
    expert_work_dir,
    installed_expert,
)
from foundry.training.together import train_on_together
from foundry.training.trainers import (
    ADAPTER_WEIGHTS,
    check_target_modules,
    fit_and_install,
    lora_config,
    trainer_callbacks,
    trainer_config,
)
from foundry.training.unsloth_backend import add_unsloth_lora, load_unsloth_base

logger = get_logger(__name__)


def train_sft(
    config: FoundryConfig,
    slug: str,
    *,
    base: LoadedBase | None = None,
    progress: TrainProgress | None = None,
    data_rev: str = "",
) -> AdapterArtifact:
    """Train persona `slug`'s SFT LoRA adapter on its framed corpus, synthetic turns and
    position rows (`foundry.data.stance`).

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
    persona = summary.personas[0]
    positions = taught_position_rows(config, persona.contract, summary.topic_split)
    logger.info(
        "%d position rows: the persona's side of its non-held-out positions", len(positions)
    )
    framing = summary.topic_split.framing
    if config.training.experts == "style+reasoning":
        style = sft_examples(persona, framing, None)  # the voice: the persona's own texts
        reasoning = sft_examples(persona, framing, synthetic, positions, corpus=False)
        artifacts = {
            name: _train_expert(
                config,
                slug,
                "sft",
                name,
                examples,
                backend,
                base if name == STYLE else None,
                progress=progress,
                data_rev=data_rev,
            )  # fmt: skip
            for name, examples in ((STYLE, style), (REASONING, reasoning))
        }
        return combine_experts(config, slug, "sft", artifacts, style[1] + reasoning[1])
    train, evaluation = sft_examples(persona, framing, synthetic, positions)
    if backend == "together":
        return train_on_together(
            config, slug, "sft", train, evaluation, progress=progress, data_rev=data_rev
        )
    model, tokenizer, base_id = _base_for_training(config, backend, base)
    check_target_modules(model, config.training.lora.target_modules, base_id)
    if backend == "unsloth":
        model = add_unsloth_lora(model, config)
    key = examples_key(config.config_hash(), "sft", base_id, train, evaluation)
    return _fit(
        config, slug, "sft", backend, model, tokenizer, train, evaluation, key,
        base_id=base_id, progress=progress, data_rev=data_rev,
    )  # fmt: skip


def train_dpo(
    config: FoundryConfig,
    slug: str,
    *,
    pairs: Sequence[PreferencePair],
    base: LoadedBase | None = None,
    progress: TrainProgress | None = None,
    data_rev: str = "",
) -> AdapterArtifact:
    """Continue persona `slug`'s SFT adapter with DPO on preference pairs.

    Args:
        config: the project configuration.
        slug: the persona; its SFT adapter must exist.
        pairs: the persona's preference pairs (`foundry.synthesis.pair_sets.load_pairs`).
        base: a freshly loaded base (its model receives the LoRA layers); loaded when None.
        progress: called as `progress(step, total, logs)` while training.
        data_rev: the data version recorded in the summary.

    Returns:
        The installed adapter at `config.adapter_dir(slug, "dpo")` (no `ref/` copy).

    Raises:
        TrainingError: the SFT adapter is missing, or an unusable backend setting.
        TrainingDataError: no train pairs.
    """
    from peft import PeftModel

    backend = resolve_backend(config)
    sft_dir = config.adapter_dir(slug, "sft")
    experts = config.training.experts == "style+reasoning"
    if experts:  # DPO continues the reasoning expert; the style expert is kept as it is
        sft_dir = expert_path(config.adapter_dir(slug, "sft"), REASONING)
    if not (sft_dir / ADAPTER_WEIGHTS).is_file():
        raise TrainingError(
            f"DPO continues the SFT adapter, and persona {slug} has none at {sft_dir}; train it "
            f"first: `foundry train --persona {slug} --stage sft` (or `--stage all`)"
        )
    summary = validate_personas(config, [slug])
    raise_for_errors(summary.problems, f"persona {slug}")
    positions = taught_position_rows(config, summary.personas[0].contract, summary.topic_split)
    train, evaluation = dpo_examples(slug, pairs, first_prompt_each(positions))
    if experts:
        artifacts = {
            STYLE: installed_expert(config.adapter_dir(slug, "sft"), STYLE),
            REASONING: _train_expert(
                config,
                slug,
                "dpo",
                REASONING,
                (train, evaluation),
                backend,
                base,
                progress=progress,
                data_rev=data_rev,
                start_from=sft_dir,
            ),  # fmt: skip
        }
        validation = _expert_validation(config, slug, summary, positions)
        return combine_experts(config, slug, "dpo", artifacts, validation)
    if backend == "together":
        return train_on_together(
            config, slug, "dpo", train, evaluation, progress=progress, data_rev=data_rev
        )
    model, tokenizer, base_id = _base_for_training(config, backend, base)
    with quiet_peft_warnings():
        model = PeftModel.from_pretrained(model, sft_dir, is_trainable=True)
    key = examples_key(
        config.config_hash(), "dpo", base_id, file_digest(sft_dir / ADAPTER_WEIGHTS), train,
        evaluation,
    )  # fmt: skip
    return _fit(
        config, slug, "dpo", backend, model, tokenizer, train, evaluation, key,
        base_id=base_id, progress=progress, data_rev=data_rev,
    )  # fmt: skip


def recombine_experts(config: FoundryConfig, slug: str, stage: Stage) -> AdapterArtifact:
    """Combine persona `slug`'s installed `stage` experts again with the current
    `training.expert_weights` or `expert_gate`, without training (e.g. after changing a weight).

    Raises:
        TrainingError: the adapter was not trained as style+reasoning experts.
    """
    folder = config.adapter_dir(slug, stage)
    if not all((expert_path(folder, name) / ADAPTER_WEIGHTS).is_file() for name in EXPERTS):
        raise TrainingError(
            f"persona {slug}'s {stage} adapter at {folder} holds no experts to combine; train it "
            "with `training.experts: style+reasoning` (`foundry train --persona "
            f"{slug} --stage all`)"
        )
    summary = validate_personas(config, [slug])
    raise_for_errors(summary.problems, f"persona {slug}")
    positions = taught_position_rows(config, summary.personas[0].contract, summary.topic_split)
    artifacts = {name: installed_expert(folder, name) for name in EXPERTS}
    validation = _expert_validation(config, slug, summary, positions)
    return combine_experts(config, slug, stage, artifacts, validation)


def _expert_validation(
    config: FoundryConfig, slug: str, summary: ValidationSummary, positions: Sequence[PositionRow]
) -> list[dict]:
    """The persona's SFT validation conversations (its texts', then its stance rows'): what the
    learned gate is fitted on."""
    persona, framing = summary.personas[0], summary.topic_split.framing
    synthetic = config.data_dir / SYNTHETIC_DIRNAME / slug / TURNS_FILENAME
    return (
        sft_examples(persona, framing, None)[1]
        + sft_examples(persona, framing, synthetic, positions, corpus=False)[1]
    )


def _train_expert(
    config: FoundryConfig,
    slug: str,
    stage: Stage,
    expert: str,
    examples: tuple[list[dict], list[dict]],
    backend: Backend,
    base: LoadedBase | None,
    *,
    progress: TrainProgress | None,
    data_rev: str,
    start_from: Path | None = None,
) -> AdapterArtifact:
    """Train one expert of `stage` (a fresh LoRA, or DPO continuing `start_from`) and install it
    at `expert_work_dir`; the caller combines the two."""
    from peft import PeftModel

    train, evaluation = examples
    model, tokenizer, base_id = _base_for_training(config, backend, base)
    parts: list[Any] = [config.config_hash(), stage, expert, base_id]
    if start_from is not None:
        with quiet_peft_warnings():
            model = PeftModel.from_pretrained(model, start_from, is_trainable=True)
        parts.append(file_digest(start_from / ADAPTER_WEIGHTS))
    else:
        check_target_modules(model, config.training.lora.target_modules, base_id)
        if backend == "unsloth":
            model = add_unsloth_lora(model, config)
    logger.info("persona %s %s: the %s expert", slug, stage, expert)
    return _fit(
        config, slug, stage, backend, model, tokenizer, train, evaluation,
        examples_key(*parts, train, evaluation), base_id=base_id, progress=progress,
        data_rev=data_rev, target=expert_work_dir(config, slug, stage, expert),
    )  # fmt: skip


def work_root(config: FoundryConfig, slug: str) -> Path:
    """Where persona `slug`'s trainings checkpoint (one folder per stage and inputs)."""
    return config.cache_dir / "work" / slug


def _base_for_training(
    config: FoundryConfig, backend: Backend, base: LoadedBase | None
) -> tuple[Any, Any, str]:
    """(model, tokenizer, base id) for one training call; the model is consumed."""
    if backend == "unsloth":
        model, tokenizer = load_unsloth_base(config)
        return model, tokenizer, config.base_model.name
    base = base or ensure_base(config)
    # The tiny cache folder is named by a hash of its corpus and settings: it identifies the base.
    return base.model, base.tokenizer, base.identity


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
    *,
    base_id: str,
    progress: TrainProgress | None,
    data_rev: str,
    target: Path | None = None,
) -> AdapterArtifact:
    """Build the TRL trainer for `stage`, train with resume, install the adapter at `target`
    (default: the persona's `stage` adapter folder)."""
    from datasets import Dataset
    from trl import DPOTrainer, SFTTrainer

    kind = config.base_model.kind
    settings = config.training.resolved(stage, kind)
    work_dir = work_root(config, slug) / f"{stage}-{key}"
    has_eval = bool(evaluation)
    if not has_eval:
        logger.warning("persona %s %s: no eval examples, so no early stopping", slug, stage)
    logger.info(
        "persona %s %s (%s): %d train / %d eval examples, effective batch %d x %d, lr %.1e",
        slug, stage, backend, len(train), len(evaluation), settings.batch_size,
        settings.gradient_accumulation, settings.learning_rate,
    )  # fmt: skip
    kwargs: dict[str, Any] = {
        "model": model,
        "args": trainer_config(config, stage, work_dir, kind=kind, has_eval=has_eval),
        "train_dataset": Dataset.from_list(train),
        "eval_dataset": Dataset.from_list(evaluation) if has_eval else None,
        "processing_class": tokenizer,
        "callbacks": trainer_callbacks(config, stage, progress, has_eval=has_eval, kind=kind),
    }
    with quiet_peft_warnings():
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
        "learning_rate": settings.learning_rate,
        "lora": config.training.lora,
        "examples_train": len(train),
        "examples_eval": len(evaluation),
        "data_rev": data_rev,
        "config_hash": config.config_hash(),
    }
    return fit_and_install(
        trainer,
        work_dir=work_dir,
        target=target or config.adapter_dir(slug, stage),
        tokenizer=tokenizer if kind == TINY else None,
        summary_fields=fields,
    )
