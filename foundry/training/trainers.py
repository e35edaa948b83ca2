"""Trainer plumbing shared by SFT and DPO: LoRA and TRL settings, progress, resume, and installing
the finished adapter.

Public entry points: `check_target_modules(model, targets, base_name)`, `lora_config(settings)`,
`trainer_config(...)`, `progress_callback(progress)`, `fit_and_install(...)`. The records they
produce live in `foundry.training.artifacts`; the backend choice in `foundry.training.backends`.
torch, transformers, peft, trl and unsloth are imported inside the functions that use them;
Unsloth only ever on CUDA (`foundry.unsloth_backend`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundry.atomic import replace_dir, staged_dir, write_text_atomic
from foundry.config import FoundryConfig
from foundry.logs import get_logger, quiet_peft_warnings
from foundry.training.artifacts import (
    SUMMARY_FILENAME,
    AdapterArtifact,
    Stage,
    TrainingError,
    TrainingSummary,
    TrainProgress,
)
from foundry.training.config import TINY, BaseKind, LoraSettings

logger = get_logger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
LOG_EVERY_STEPS = 10


def linear_module_names(model: Any) -> list[str]:
    """Short names of the model's linear layers except the output head (LoRA targets)."""
    import torch

    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name and not name.endswith("lm_head")
        }
    )


def check_target_modules(model: Any, targets: Sequence[str] | str, base_name: str) -> None:
    """Raise if a LoRA target module name matches no module of `model` (`all-linear` passes)."""
    if isinstance(targets, str):
        return
    names = [name for name, _ in model.named_modules()]
    unknown = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unknown:
        valid = ", ".join(linear_module_names(model)[:8])
        raise TrainingError(
            f"`training.lora.target_modules`: {', '.join(repr(t) for t in unknown)} match no "
            f"module of base model {base_name!r}; valid names include {valid}; fix the list or "
            "use `all-linear`"
        )


def lora_config(settings: LoraSettings) -> Any:
    """A PEFT `LoraConfig` for causal LM training from the `training.lora` settings."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def trainer_config(
    config: FoundryConfig, stage: Stage, work_dir: Path, *, kind: BaseKind, has_eval: bool
) -> Any:
    """TRL `SFTConfig` / `DPOConfig` for `stage`, checkpointing into `work_dir`."""
    import torch
    from trl import DPOConfig, SFTConfig

    settings = config.training.resolved(stage, kind)
    has_cuda = torch.cuda.is_available()
    max_length = int(settings.max_length or 0)
    if kind == TINY:
        max_length = min(max_length, config.base_model.tiny.context_length)
    kwargs: dict[str, Any] = {
        "output_dir": str(work_dir),
        "learning_rate": config.training.learning_rate(stage, kind),
        "weight_decay": settings.weight_decay,
        # transformers 5 dropped warmup_ratio: a warmup_steps float below 1 is a share of steps.
        "warmup_steps": settings.warmup_ratio,
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation,
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps or -1,
        "seed": config.training.seed,
        "max_length": max_length,
        "logging_steps": min(settings.eval_steps, LOG_EVERY_STEPS),
        "save_strategy": "steps",
        "save_steps": settings.eval_steps,
        "save_total_limit": 2,
        # Counted into the trainer state, so the total survives a resume (TRL's own count restarts).
        "include_num_input_tokens_seen": "non_padding",
        # TRL turns activation checkpointing on by default; the stage settings say per base.
        "activation_checkpointing": bool(settings.activation_checkpointing),
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": not has_cuda,
        "bf16": has_cuda and torch.cuda.is_bf16_supported(),
    }
    if has_eval:
        kwargs |= {
            "eval_strategy": "steps",
            "eval_steps": settings.eval_steps,
            "load_best_model_at_end": bool(settings.keep_best),
            "metric_for_best_model": "eval_loss",
            "greater_is_better": False,
        }
    else:
        kwargs["eval_strategy"] = "no"
    if stage == "sft":
        return SFTConfig(packing=config.training.sft.packing, **kwargs)
    return DPOConfig(beta=config.training.dpo.beta, **kwargs)


def trainer_callbacks(
    config: FoundryConfig,
    stage: Stage,
    progress: TrainProgress | None,
    *,
    has_eval: bool,
    kind: BaseKind,
) -> list[Any]:
    """The progress/log-line callback, plus early stopping when there is an eval split."""
    from transformers import EarlyStoppingCallback

    callbacks = [progress_callback(progress)]
    patience = config.training.resolved(stage, kind).early_stopping_patience or 0
    if has_eval and patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    return callbacks


def progress_callback(progress: TrainProgress | None) -> Any:
    """A `TrainerCallback` that logs one fixed-shape line per logging step and reports progress.

    `progress(step, total, logs)` is called at the end of every step with empty logs, and again
    with the trainer's metrics (plus `tokens_per_s` for training lines) whenever it logs.
    """
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.mark = (time.perf_counter(), state.num_input_tokens_seen)

        def on_step_end(self, args, state, control, **kwargs):
            if progress:
                progress(state.global_step, state.max_steps, {})

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            step, total = state.global_step, state.max_steps
            if "loss" in logs:
                now, tokens = time.perf_counter(), state.num_input_tokens_seen
                before, tokens_before = self.mark
                logs["tokens_per_s"] = (tokens - tokens_before) / max(now - before, 1e-9)
                self.mark = (now, tokens)
                logger.info(
                    "step %6d/%-6d loss %8.4f  lr %.3e  tokens/s %9.1f",
                    step, total, logs["loss"], logs.get("learning_rate", 0.0), logs["tokens_per_s"],
                )  # fmt: skip
            elif "eval_loss" in logs:
                logger.info("step %6d/%-6d eval_loss %8.4f", step, total, logs["eval_loss"])
            if progress and ("loss" in logs or "eval_loss" in logs):
                progress(step, total, logs)

    return _Progress()


def fit_and_install(
    trainer: Any,
    *,
    work_dir: Path,
    target: Path,
    tokenizer: Any | None,
    summary_fields: dict[str, Any],
) -> AdapterArtifact:
    """Train (resuming from `work_dir`'s last checkpoint), then install the adapter at `target`.

    The adapter is written to a staged folder and swapped in only once complete, so a failed run
    never touches an existing adapter; `work_dir` is kept on failure (the next run resumes from
    it) and removed on success. `tokenizer` is saved beside the adapter when given (tiny base).
    """
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints raw dicts; `progress_callback` logs
    checkpoint = last_complete_checkpoint(work_dir)
    resumed_from_step = _checkpoint_step(Path(checkpoint)) if checkpoint else None
    if checkpoint:
        logger.info("resuming from %s (step %d)", checkpoint, resumed_from_step)
    started = time.perf_counter()
    with quiet_peft_warnings():
        trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    summary = _summarise(trainer.state, seconds, resumed_from_step, summary_fields)
    model = trainer.accelerator.unwrap_model(trainer.model)
    with staged_dir(target.parent, prefix=f".{target.name}-") as stage:
        folder = stage / target.name
        # Only this persona's adapter: DPO adds a `ref` copy that must not be saved. No adapter
        # trains the embeddings, so PEFT need not look the base up on the hub to find out.
        model.save_pretrained(
            folder,
            selected_adapters=["default"],
            safe_serialization=True,
            save_embedding_layers=False,
        )
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        write_text_atomic(folder / SUMMARY_FILENAME, summary.model_dump_json(indent=2) + "\n")
        if not (folder / ADAPTER_WEIGHTS).is_file():
            raise TrainingError(f"saving the adapter wrote no {ADAPTER_WEIGHTS} in {folder}")
        replace_dir(folder, target)
    shutil.rmtree(work_dir, ignore_errors=True)
    logger.info(
        "%s %s adapter: %d steps, %d tokens, %.1f s, best eval loss %s -> %s",
        summary.persona, summary.stage, summary.steps, summary.train_tokens, seconds,
        "n/a" if summary.best_eval_loss is None else f"{summary.best_eval_loss:.4f}", target,
    )  # fmt: skip
    return AdapterArtifact(
        persona=summary.persona, stage=summary.stage, path=target, summary=summary
    )


def last_complete_checkpoint(work_dir: Path) -> str | None:
    """The newest checkpoint in `work_dir` the trainer finished writing, or None.

    The trainer writes `trainer_state.json` after the weights and optimizer state; a folder
    without it was cut off mid-write (a killed process or a lost node) and would fail the resume,
    so it is removed."""
    if not work_dir.is_dir():
        return None
    folders = [p for p in work_dir.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name.rsplit("-", 1)[-1]), reverse=True):
        if (folder / "trainer_state.json").is_file():
            return str(folder)
        logger.warning("removing %s: it was cut off while being written", folder)
        shutil.rmtree(folder, ignore_errors=True)
    return None


def _checkpoint_step(checkpoint: Path) -> int:
    state_file = checkpoint / "trainer_state.json"
    if state_file.is_file():
        return int(json.loads(state_file.read_text(encoding="utf-8"))["global_step"])
    return int(checkpoint.name.rsplit("-", 1)[-1])


def _summarise(
    state: Any, seconds: float, resumed_from_step: int | None, fields: dict[str, Any]
) -> TrainingSummary:
    history = state.log_history
    train_logs = [entry for entry in history if "loss" in entry]
    eval_losses = [float(entry["eval_loss"]) for entry in history if "eval_loss" in entry]
    best = state.best_metric if state.best_metric is not None else min(eval_losses, default=None)
    return TrainingSummary(
        steps=state.global_step,
        train_tokens=int(state.num_input_tokens_seen),
        seconds=round(seconds, 3),
        train_losses=[float(entry["loss"]) for entry in train_logs],
        eval_losses=eval_losses,
        best_eval_loss=None if best is None else float(best),
        resumed_from_step=resumed_from_step,
        **fields,
    )
