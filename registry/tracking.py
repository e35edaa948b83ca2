"""MLflow tracking: one experiment per project, a parent run per retrain, nested runs per persona
and stage (sft, dpo, eval), each tagged with its lineage.

Public entry points: `tracking_uri(config)`, `open_client(config)` (fails fast and clearly when a
tracking server is unreachable), `start_parent_run`, `log_adapter_run`, `log_eval_run`,
`log_eval_report`, `log_evaluation_run`, `log_debate_run`, `finish_run` and `lineage_tags`. Params
come from the resolved config and training summaries only, never from the environment, so no
secret can reach a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.errors import FoundryError
from foundry.evaluation.schema import EvalReport
from foundry.evaluation.summary import flat_intervals, flat_metrics
from foundry.logs import get_logger
from foundry.training.artifacts import AdapterArtifact
from foundry.training.base_model import base_tag

logger = get_logger(__name__)

PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
HEALTH_TIMEOUT_S = 5


class TrackingError(FoundryError):
    """The MLflow tracking store cannot be used."""


def tracking_uri(config: FoundryConfig) -> str:
    """`registry.tracking_uri`, else MLFLOW_TRACKING_URI, else the project's sqlite store (an
    absolute URI: a relative one would depend on the working directory)."""
    return (
        config.registry.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI", "")
        or f"sqlite:///{(config.root / 'mlflow.db').resolve()}"
    )


def open_client(config: FoundryConfig) -> Any:
    """An `MlflowClient` on the configured store, after checking a server answers.

    Raises:
        TrackingError: an http(s) tracking server does not answer its health check.
    """
    from mlflow import MlflowClient

    uri = tracking_uri(config)
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    return MlflowClient(tracking_uri=uri)


def _check_server(uri: str) -> None:
    import requests

    try:
        answer = requests.get(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri} ({type(exc).__name__}); start it "
            "(`mlflow server ...`), or unset MLFLOW_TRACKING_URI / `registry.tracking_uri` to use "
            "the project's sqlite store. Nothing was registered."
        ) from None


def experiment_id(client: Any, config: FoundryConfig) -> str:
    """The project's experiment, created on first use (artifacts under `<root>/mlartifacts`)."""
    name = config.registry.experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (config.root / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - another process created it first; read it back
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def git_commit(root: Path) -> str:
    """The project's git commit (with `-dirty` when it has uncommitted changes), or empty."""

    def run(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = run("rev-parse", "HEAD")
    dirty = run("status", "--porcelain", "--untracked-files=no")
    return f"{commit}-dirty" if commit and dirty else commit


def lineage_tags(
    config: FoundryConfig, data_rev: str, flow_run_id: str = "", **extra: str
) -> dict[str, str]:
    """The tags that tie a run or a model version to exactly what produced it."""
    tags = {
        "data_rev": data_rev,
        "git_commit": git_commit(config.root),
        "config_hash": config.config_hash(),
        "base_model": base_tag(config),
        "prefect_flow_run_id": flow_run_id,
        **extra,
    }
    return {key: value for key, value in tags.items() if value}


def start_parent_run(client: Any, config: FoundryConfig, tags: Mapping[str, str]) -> str:
    """The retrain's parent run, with the resolved config as an artifact."""
    run = client.create_run(experiment_id(client, config), tags={RUN_NAME_TAG: "retrain", **tags})
    client.log_dict(run.info.run_id, config.model_dump(mode="json"), "config.json")
    return run.info.run_id


def log_adapter_run(
    client: Any, config: FoundryConfig, parent_id: str, artifact: AdapterArtifact,
    tags: Mapping[str, str],
) -> str:  # fmt: skip
    """A nested run for one trained adapter: params, loss curves, and the adapter folder."""
    summary = artifact.summary
    run = client.create_run(
        experiment_id(client, config),
        tags={
            PARENT_RUN_TAG: parent_id,
            RUN_NAME_TAG: f"{artifact.persona}-{artifact.stage}",
            "persona": artifact.persona,
            "stage": artifact.stage,
            **tags,
        },
    )
    run_id = run.info.run_id
    params = {
        "stage": summary.stage,
        "backend": summary.backend,
        "base_model": summary.base_model,
        "learning_rate": summary.learning_rate,
        "steps": summary.steps,
        "lora_r": summary.lora.r,
        "lora_alpha": summary.lora.alpha,
        "lora_dropout": summary.lora.dropout,
        "lora_target_modules": json.dumps(summary.lora.target_modules),
        "examples_train": summary.examples_train,
        "examples_eval": summary.examples_eval,
        "train_tokens": summary.train_tokens,
        # style+reasoning: the experts travel inside the adapter folder (`adapter/experts/`)
        "experts": json.dumps(summary.experts) if summary.experts else "single",
    }
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for step, loss in enumerate(summary.train_losses):
        client.log_metric(run_id, "train_loss", loss, step=step)
    for step, loss in enumerate(summary.eval_losses):
        client.log_metric(run_id, "eval_loss", loss, step=step)
    if summary.best_eval_loss is not None:
        client.log_metric(run_id, "best_eval_loss", summary.best_eval_loss)
    client.log_metric(run_id, "train_seconds", summary.seconds)
    client.log_artifacts(run_id, str(artifact.path), "adapter")
    return run_id


def log_eval_run(
    client: Any, config: FoundryConfig, parent_id: str, report: EvalReport, folder: Path,
    metrics: Mapping[str, float], tags: Mapping[str, str],
) -> str:  # fmt: skip
    """A nested run with the evaluation's metrics, and its report folder as artifacts."""
    run = client.create_run(
        experiment_id(client, config),
        tags={PARENT_RUN_TAG: parent_id, RUN_NAME_TAG: "eval", **tags},
    )
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.log_artifacts(run.info.run_id, str(folder), "evaluation")
    client.set_tag(run.info.run_id, "eval_variants", ",".join(report.variants))
    return run.info.run_id


def log_eval_report(report: EvalReport, folder: Path, run_id: str, uri: str) -> None:
    """Every summary number as an MLflow metric (`eval.<variant>.<metric>`), each 95 % interval
    as a tag (`interval.eval.<variant>.<metric>`: `"low,high"`), the folder as artifacts under
    `evaluation/`, into run `run_id` of the store at `uri`."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for name, value in flat_metrics(report).items():
        client.log_metric(run_id, name, value)
    for name, (low, high) in flat_intervals(report).items():
        client.set_tag(run_id, f"interval.{name}", f"{low!r},{high!r}")
    client.log_artifacts(run_id, str(folder), artifact_path="evaluation")


def log_evaluation_run(
    config: FoundryConfig, report: EvalReport, folder: Path, data_rev: str
) -> str:
    """The retrain flow's top-level `evaluation` run: lineage tags, the report's metrics and
    folder; returns its id."""
    client = open_client(config)
    tags = {RUN_NAME_TAG: "evaluation", **lineage_tags(config, data_rev)}
    run_id = client.create_run(experiment_id(client, config), tags=tags).info.run_id
    log_eval_report(report, folder, run_id, tracking_uri(config))
    client.set_terminated(run_id)
    return run_id


def log_debate_run(
    config: FoundryConfig, metrics: Mapping[str, float], intervals: Mapping[str, list[float]],
    params: Mapping[str, Any], files: list[Path], flow_run_id: str = "",
) -> str:  # fmt: skip
    """The `debate` flow's top-level run, beside the evaluation's in the project's experiment and
    tagged `kind=debate`: lineage tags, `params` (debate settings, never a key), `metrics`
    (`debate.<variant>.<measure>`), each interval as an `interval.<metric>` tag and `files`
    under `debate/`; returns its id."""
    from mlflow.entities import Metric, Param

    client = open_client(config)
    tags = {
        RUN_NAME_TAG: "debate",
        "kind": "debate",
        **lineage_tags(config, "", flow_run_id),
        **{f"interval.{name}": f"{low!r},{high!r}" for name, (low, high) in intervals.items()},
    }
    run_id = client.create_run(experiment_id(client, config), tags=tags).info.run_id
    try:
        stamp = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(name, value, stamp, 0) for name, value in metrics.items()],
            params=[Param(name, str(value)) for name, value in params.items()],
        )
        for path in files:
            client.log_artifact(run_id, str(path), artifact_path="debate")
    except Exception:
        finish_run(client, run_id, failed=True)
        raise
    finish_run(client, run_id)
    return run_id


def finish_run(client: Any, run_id: str, failed: bool = False) -> None:
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


VECTOR_ARTIFACT = "vector"


def log_vector(client: Any, run_id: str, folder: Path, adapter: Path) -> dict[str, str]:
    """Log the persona vector folder with the adapter's run; return the model-version tags.

    A vector whose `dpo+steer` strength was swept on another adapter than `adapter` (the one
    being registered) is stale and is not logged: its strength would not fit the adapter.
    """
    from foundry.steering.store import META_FILE
    from foundry.training.adapters import adapter_digest

    if not (folder / META_FILE).is_file():
        return {}
    meta = json.loads((folder / META_FILE).read_text())
    swept_on = (meta.get("adapters") or {}).get("dpo")
    if swept_on and swept_on != adapter_digest(adapter):
        logger.warning(
            "persona vector in %s was swept on an older adapter; not registered with this "
            "version (run `foundry vectors extract --persona %s`)", folder, meta.get("persona"),
        )  # fmt: skip
        return {}
    client.log_artifacts(run_id, str(folder), VECTOR_ARTIFACT)
    for key in ("layer", "family", "base_model"):
        client.log_param(run_id, f"vector_{key}", meta[key])
    alphas = meta.get("alpha") or {}
    return {
        "vector.layer": str(meta["layer"]),
        "vector.family": str(meta["family"]),
        "vector.base_model": str(meta["base_model"]),
        **{f"vector.alpha.{k.replace('+', '_')}": str(v) for k, v in alphas.items()},
    }
