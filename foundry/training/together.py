"""Managed LoRA fine-tuning on Together (`training.backend: together`).

Public entry points: `check_together_setup(config)` (the `tiny` base and a missing
TOGETHER_API_KEY are refused before any work) and `train_on_together(config, slug, stage, train,
evaluation)`, which writes the examples as Together JSONL under
`<cache_dir>/together/<slug>/<stage>-<key>/`, uploads them, creates the fine-tuning job (DPO
continues the persona's SFT job), polls it (`foundry.training.together_jobs`), and installs the
adapter Together trained at `config.adapter_dir(slug, stage)` in the same layout as local training
(`adapter_config.json`, `adapter_model.safetensors`, `training_summary.json`). The job id is
kept in `job.json` in the work folder, so a re-run after a crash polls the same job instead of
paying for a new one.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from foundry.atomic import replace_dir, staged_dir, write_text_atomic
from foundry.config import FoundryConfig, load_settings
from foundry.logs import get_logger
from foundry.training.artifacts import (
    SUMMARY_FILENAME,
    AdapterArtifact,
    Stage,
    TrainingError,
    TrainingSummary,
    TrainProgress,
)
from foundry.training.datasets import examples_key
from foundry.training.together_archive import unpack_adapter
from foundry.training.together_jobs import (
    KEY_VARIABLE,
    STATE_FILENAME,
    api_errors,
    job_losses,
    job_seconds,
    wait_for_job,
)

logger = get_logger(__name__)


def together_model(config: FoundryConfig) -> str:
    """The Together model the jobs train on: `training.together.model`, else the base's name."""
    return config.training.together.model or config.base_model.name


def check_together_setup(config: FoundryConfig) -> None:
    """Refuse managed training that cannot work: the `tiny` base, or no API key.

    Raises:
        TrainingError: naming the setting or environment variable to fix.
    """
    if config.base_model.is_tiny:
        raise TrainingError(
            "`training.backend: together` trains on a Together base model, and `base_model.name` "
            "is `tiny` (a local model Together does not have); set `base_model.name` to a "
            "Together fine-tuning model (e.g. meta-llama/Meta-Llama-3.1-8B-Instruct-Reference), "
            "or `training.backend` to `auto` to train locally"
        )
    if load_settings().together_api_key is None:
        raise TrainingError(
            f"`training.backend: together` needs a Together API key and {KEY_VARIABLE} is not "
            f"set; export {KEY_VARIABLE} (or FOUNDRY_{KEY_VARIABLE}), or set `training.backend` "
            "to `auto` to train locally"
        )


def train_on_together(
    config: FoundryConfig,
    slug: str,
    stage: Stage,
    train: list[dict],
    evaluation: list[dict],
    *,
    progress: TrainProgress | None = None,
    data_rev: str = "",
) -> AdapterArtifact:
    """Train persona `slug`'s `stage` adapter on Together and install it locally.

    Args:
        config: the project configuration (`training.backend: together`).
        slug: the persona.
        stage: `sft` (examples in TRL prompt/completion form) or `dpo` (prompt/chosen/rejected
            rows; the job continues the persona's Together SFT job).
        train: the train examples (uploaded).
        evaluation: the eval examples (counted in the summary; kept for local evaluation).
        progress: called as `progress(step, total, logs)` when Together reports steps.
        data_rev: the data version recorded in the summary.

    Returns:
        The installed adapter at `config.adapter_dir(slug, stage)`.

    Raises:
        TrainingError: Together refused a request, the job failed or timed out (the message
            names the job id), or the adapter it produced is unusable.
    """
    check_together_setup(config)
    label = f"persona {slug} {stage}"
    parent_job = _sft_job_id(config, slug) if stage == "dpo" else None
    rows = [_together_row(stage, example) for example in train]
    key = examples_key(config.config_hash(), stage, together_model(config), parent_job, rows)
    work_dir = config.cache_dir / "together" / slug / f"{stage}-{key}"
    state = _read_state(work_dir)
    client = _client()
    with api_errors(label, state.get("job_id")):
        if "job_id" not in state:
            _submit(client, config, stage, rows, work_dir, state, parent_job, slug)
        job_id = state["job_id"]
    with api_errors(label, job_id, resumable=True):
        job = wait_for_job(client, job_id, label, work_dir, progress, config)
        train_losses, eval_losses, steps = job_losses(client, job_id)
    summary = TrainingSummary(
        persona=slug,
        stage=stage,
        backend="together",
        base_model=config.base_model.name,
        steps=steps,
        train_tokens=int(getattr(job, "token_count", None) or 0),
        seconds=job_seconds(job),
        train_losses=train_losses,
        eval_losses=eval_losses,
        best_eval_loss=job.early_stopping_best_metric or min(eval_losses, default=None),
        resumed_from_step=None,
        learning_rate=config.training.learning_rate(stage, "pretrained"),
        lora=config.training.lora,
        examples_train=len(train),
        examples_eval=len(evaluation),
        data_rev=data_rev,
        config_hash=config.config_hash(),
        job_id=job_id,
    )
    target = config.adapter_dir(slug, stage)
    with api_errors(label, job_id, resumable=True):
        _install(client, job_id, work_dir, target, summary)
    shutil.rmtree(work_dir, ignore_errors=True)
    logger.info("%s: Together job %s, %d steps -> %s", label, job_id, steps, target)
    return AdapterArtifact(persona=slug, stage=stage, path=target, summary=summary)


def _together_row(stage: Stage, example: dict) -> dict:
    """A TRL row in Together's format: chat `messages` (SFT) or a preference row (DPO)."""
    if stage == "sft":
        return {"messages": [*example["prompt"], *example["completion"]]}
    return {
        "input": {"messages": example["prompt"]},
        "preferred_output": example["chosen"],
        "non_preferred_output": example["rejected"],
    }


def _sft_job_id(config: FoundryConfig, slug: str) -> str:
    """The Together job that trained `slug`'s SFT adapter (DPO continues from it)."""
    folder = config.adapter_dir(slug, "sft")
    summary = TrainingSummary.model_validate_json((folder / SUMMARY_FILENAME).read_text())
    if summary.backend != "together" or not summary.job_id:
        raise TrainingError(
            f"DPO on Together continues persona {slug}'s SFT job, but its SFT adapter at {folder} "
            f"was trained with backend {summary.backend!r}; train SFT on Together first: "
            f"`foundry train --persona {slug} --stage sft` with `training.backend: together`"
        )
    if summary.base_model != config.base_model.name:
        raise TrainingError(
            f"persona {slug}'s SFT adapter was trained on {summary.base_model!r}, not "
            f"`base_model.name` {config.base_model.name!r}; retrain SFT first"
        )
    return summary.job_id


def _client() -> Any:
    from together import Together

    settings = load_settings()
    key = settings.together_api_key.get_secret_value() if settings.together_api_key else None
    return Together(api_key=key, base_url=settings.together_base_url or None, timeout=120.0)


def _submit(
    client: Any,
    config: FoundryConfig,
    stage: Stage,
    rows: list[dict],
    work_dir: Path,
    state: dict,
    parent_job: str | None,
    slug: str,
) -> None:
    """Upload the examples (once) and create the job, recording both ids in the state file."""
    if "file_id" not in state:
        path = work_dir / f"{stage}-train.jsonl"
        write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        uploaded = client.files.upload(file=path, purpose="fine-tune", check=True)
        state["file_id"] = uploaded.id
        _write_state(work_dir, state)
        logger.info(
            "persona %s %s: uploaded %d examples as %s", slug, stage, len(rows), uploaded.id
        )
    job = client.fine_tuning.create(
        **_job_params(config, stage, state["file_id"], parent_job, slug)
    )
    state["job_id"] = job.id
    _write_state(work_dir, state)
    logger.info("persona %s %s: created Together job %s", slug, stage, job.id)


def _job_params(
    config: FoundryConfig, stage: Stage, file_id: str, parent_job: str | None, slug: str
) -> dict[str, Any]:
    """`fine_tuning.create` arguments from the `training` settings (a real base: not tiny)."""
    settings = config.training.resolved(stage, "pretrained")
    lora = config.training.lora
    modules = lora.target_modules
    if settings.max_steps:
        logger.warning(
            "`training.%s.max_steps` is ignored by Together (it trains whole epochs); "
            "set it to 0 to silence this", stage,
        )  # fmt: skip
    params: dict[str, Any] = {
        "training_file": file_id,
        "lora": True,
        "lora_r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "lora_trainable_modules": modules if isinstance(modules, str) else ",".join(modules),
        "n_epochs": max(1, math.ceil(settings.epochs or 1)),
        "learning_rate": config.training.learning_rate(stage, "pretrained"),
        "warmup_ratio": settings.warmup_ratio,
        "weight_decay": settings.weight_decay,
        "random_seed": config.training.seed,
        "suffix": f"{slug}-{stage}"[:40],
        "training_method": stage,
    }
    if stage == "sft":
        # Loss on the assistant turns only, like local SFT's completion-only loss.
        params |= {"model": together_model(config), "train_on_inputs": False}
    else:  # Together takes a base model or a checkpoint to start from, never both
        params |= {"from_checkpoint": parent_job, "dpo_beta": config.training.dpo.beta}
    return params


def _install(
    client: Any, job_id: str, work_dir: Path, target: Path, summary: TrainingSummary
) -> None:
    """Download the job's adapter archive and swap it in at `target` only once complete."""
    archive = work_dir / "adapter.archive"
    content = client.fine_tuning.with_streaming_response.content
    with content(ft_id=job_id, checkpoint="adapter") as response:
        response.stream_to_file(archive)
    with staged_dir(target.parent, prefix=f".{target.name}-") as stage:
        folder = stage / target.name
        unpack_adapter(archive, folder, f"Together job {job_id}")
        write_text_atomic(folder / SUMMARY_FILENAME, summary.model_dump_json(indent=2) + "\n")
        replace_dir(folder, target)


def _read_state(work_dir: Path) -> dict:
    path = work_dir / STATE_FILENAME
    if not path.is_file():
        return {}
    state = json.loads(path.read_text(encoding="utf-8"))
    if "job_id" in state:
        logger.info("resuming Together job %s (from %s)", state["job_id"], path)
    return state


def _write_state(work_dir: Path, state: dict) -> None:
    write_text_atomic(work_dir / STATE_FILENAME, json.dumps(state, indent=2) + "\n")
