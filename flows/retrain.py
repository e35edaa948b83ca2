"""The `retrain` flow, the main job: from persona data to registered, promoted adapters.

plan (checks, keys) → version the data → base model → per persona: synthesize → pairs → train
(SFT then DPO, in worker processes) → per derived persona: merge its sources' adapters (keyed by
their digests, `tasks.merge`) → evaluate (all personas together) → per persona: register
the challenger and run the promotion gate → deploy the champion when asked.

Every step is a Prefect task cached under a key of what it depends on
(`foundry.orchestration.run_keys`), with its result persisted in the project, so a rerun with
nothing changed only checks, and editing one persona redoes that persona. A persona whose step
fails is dropped from the later steps while the others go on; the run then ends failed and names
it, and its champion stays as it was.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import Task, flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import as_completed
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.retrain_summary import render_summary, summary_table
from foundry.config import load_config
from foundry.logs import get_logger, prefect_logs
from foundry.orchestration.derived import merge_key
from foundry.orchestration.executors import model_steps
from foundry.orchestration.plan import RetrainPlan
from foundry.orchestration.retrain_run import RetrainRun, failure_reason, names_with_status
from foundry.orchestration.retries import retry_options
from foundry.orchestration.run_events import emit
from foundry.orchestration.run_keys import evaluation_key
from foundry.training.pool import training_pool
from tasks.deploy import deploy_task
from tasks.evaluate import evaluation_task
from tasks.merge import merge_persona_task
from tasks.plan import plan_task
from tasks.preferences import pairs_persona_task
from tasks.register import register_persona_task
from tasks.steering import vectors_task
from tasks.synth import synth_persona_task
from tasks.train import build_base_task, train_persona_task
from tasks.versioning import version_data_task

logger = get_logger(__name__)


@flow(name="retrain", task_runner=ThreadPoolTaskRunner(max_workers=8))
def retrain(
    config_path: str | None = None,
    personas: list[str] | None = None,
    force: bool = False,
    deploy: bool = False,
    provider: str = "",
) -> Any:
    """Build every selected persona's adapters, evaluate, register and promote; summarise.

    Args:
        config_path: `foundry.yaml` to use (default: the one in the working directory).
        personas: slugs to run (default: `personas.include`, or every persona).
        force: redo every step even when its cached result is still valid (paid generations
            are still reused from the synthesis cache).
        deploy: deploy each new champion to `deploy.target`.
        provider: synthesis provider (default: `synthesis.provider`).

    Returns:
        The run summary (`{"data_rev", "personas": {slug: {...}}, "evaluation", "failed", ...}`);
        when a persona failed, a Failed state that carries the same summary.
    """
    with prefect_logs():
        started = time.perf_counter()
        plan = RetrainPlan.model_validate(plan_task(config_path, personas, provider, deploy))
        config = load_config(Path(config_path) if config_path else None)
        run = RetrainRun(config, plan, force)
        version_data_task(config_path)
        # Models load in the pool's processes (started on first use, ended before evaluation),
        # so this process does not hold them while the workers train. With the `ray` executor,
        # training, vectors and evaluation run as Ray tasks instead (`model_steps`).
        with model_steps(config):
            with training_pool(*run.pool_size()):
                run.step(build_base_task, plan.base_key, config_path, refresh=force)
                _synthesize(run, config_path)
                _pairs(run, config_path)
                version = version_data_task(config_path)
                run.data_rev = version["data_rev"]
                _train(run, config_path)
                if config.steering.enabled:
                    _vectors(run, config_path)
            _merge(run, config_path)
            _evaluate(run, config_path)
        _register(run, config_path)
        if deploy:
            _deploy(run, config_path)
        result = run.summary(time.perf_counter() - started)
        create_markdown_artifact(key="retrain-summary", markdown=render_summary(result))
        create_table_artifact(key="retrain-metrics", table=summary_table(result))
        logger.info(
            "retrain done: data %s; retrained %s; cached %s; failed %s",
            result["data_rev"], names_with_status(result, "retrained"),
            names_with_status(result, "cached"),
            ", ".join(result["failed"]) or "none",
        )  # fmt: skip
    if result["failed"]:
        reasons = "; ".join(f"{slug}: {why}" for slug, why in result["failed"].items())
        return Failed(message=f"persona(s) failed: {reasons}", data=result)
    return result


def _synthesize(run: RetrainRun, config_path: str | None) -> None:
    share = run.config.synthesis.budget_usd / max(1, len(run.active))
    futures = {
        slug: run.cached(synth_persona_task, run.plan.keys[slug].synth)
        .with_options(**retry_options(run.config))
        .submit(config_path, slug, run.plan.provider, share)
        for slug in run.active
    }
    _collect(run, "synthesize", futures)


def _pairs(run: RetrainRun, config_path: str | None) -> None:
    # One at a time: the generic negatives come from the base model, which uses every core.
    for slug in run.active:
        emit(slug, "pairs", "running")
        task = run.cached(pairs_persona_task, run.plan.keys[slug].pairs)
        run.record(slug, "pairs", task(config_path, slug, run.plan.provider, return_state=True))


def _train(run: RetrainRun, config_path: str | None) -> None:
    # The time limit is enforced on the worker process (`orchestration.train_timeout_s`).
    _per_persona(run, config_path, train_persona_task, "train")


def _vectors(run: RetrainRun, config_path: str | None) -> None:
    # Each persona's vector reads its own DPO adapter and every persona's real texts.
    _per_persona(run, config_path, vectors_task, "vectors")


def _per_persona(run: RetrainRun, config_path: str | None, task: Task, step: str) -> None:
    """Submit `task(config_path, slug, data_rev)` for every active persona under its `step` key
    (`PersonaKeys.<step>`) and record each outcome."""
    futures = {
        slug: run.cached(task, getattr(run.plan.keys[slug], step)).submit(
            config_path, slug, run.data_rev
        )
        for slug in run.active
    }
    _collect(run, step, futures)


def _merge(run: RetrainRun, config_path: str | None) -> None:
    # After training: keyed by the sources' installed adapters, so a retrained source re-merges.
    for slug, sources in run.plan.derived.items():
        broken = [s for s in sources if s in run.failed]
        if broken:
            run.fail(slug, "merge", f"source {', '.join(broken)} failed")
            continue
        run.merge_keys[slug] = merge_key(run.config, slug, run.plan.base_key)
        emit(slug, "merge", "running")
        state = run.cached(merge_persona_task, run.merge_keys[slug])(
            config_path, slug, run.data_rev, return_state=True
        )
        run.record(slug, "merge", state)


def _evaluate(run: RetrainRun, config_path: str | None) -> None:
    if not run.active and not run.active_derived:
        return
    slugs = [*run.evaluation_personas(), *run.active_derived]
    emit("", "evaluate", "running")
    key = evaluation_key(run.config, {s: run.model_key(s) for s in slugs}, run.plan.base_key)
    task = run.cached(evaluation_task, key).with_options(
        timeout_seconds=run.config.orchestration.eval_timeout_s
    )
    state = task(config_path, slugs, run.data_rev, return_state=True)
    if state.is_completed():
        run.evaluation = {**state.result(), "cached": state.name == "Cached"}
        emit("", "evaluate", "cached" if run.evaluation["cached"] else "done")
        return
    reason = f"evaluation: {failure_reason(state)}"
    emit("", "evaluate", "failed", detail=reason)
    run.fail_active("evaluate", reason)


def _register(run: RetrainRun, config_path: str | None) -> None:
    # One at a time: registrations write the same tracking store. Derived personas come last:
    # their lineage tags name their sources' versions.
    for slug in [*run.active, *run.active_derived]:
        emit(slug, "register", "running")
        state = run.cached(register_persona_task, run.registration_key(slug))(
            config_path, slug, run.data_rev, run.plan.content_hashes[slug],
            run.evaluation.get("folder"), run.evaluation.get("run_id", ""), return_state=True,
        )  # fmt: skip
        run.record(slug, "register", state)


def _deploy(run: RetrainRun, config_path: str | None) -> None:
    for slug, version in run.promoted_versions().items():
        state = deploy_task.with_options(**retry_options(run.config))(
            config_path, slug, version, return_state=True
        )
        run.record(slug, "deploy", state)


def _collect(run: RetrainRun, step: str, futures: dict[str, Any]) -> None:
    for slug in futures:
        emit(slug, step, "running")
    by_future = {id(future): slug for slug, future in futures.items()}
    for future in as_completed(list(futures.values())):
        future.wait()
        run.record(by_future[id(future)], step, future.state)
