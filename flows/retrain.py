"""The `retrain` flow, the main job: from persona data to registered, promoted adapters.

plan (checks, keys) → version the data → base model → per persona: synthesize → pairs → train
(SFT then DPO, in worker processes) → evaluate (all personas together) → per persona: register
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
from foundry.config import FoundryConfig, load_config
from foundry.logs import get_logger, prefect_logs
from foundry.orchestration.run_cache import cache_options, has_result
from foundry.orchestration.run_events import emit
from foundry.training.pool import plan_workers, training_pool
from tasks.deploy import deploy_task
from tasks.evaluate import evaluation_task
from tasks.plan import RetrainPlan, plan_task
from tasks.preferences import pairs_persona_task
from tasks.register import register_persona_task
from tasks.steering import vectors_task
from tasks.synth import synth_persona_task
from tasks.train import build_base_task, train_persona_task
from tasks.versioning import version_data_task

logger = get_logger(__name__)

PENDING_STAGES: tuple[str, ...] = ()
# Where each step's result goes in a persona's summary row.
RESULT_KEYS = {
    "synthesize": "synthesis",
    "pairs": "pairs",
    "train": "adapters",
    "vectors": "vectors",
    "register": "registry",
    "deploy": "deployment",
}


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
        run = _Run(config, plan, force)
        version_data_task(config_path)
        # Models load in the pool's processes (started on first use, ended before evaluation),
        # so this process does not hold them while the workers train.
        with training_pool(*_pool_size(run)):
            run.step(build_base_task, plan.base_key, config_path, refresh=force)
            _synthesize(run, config_path)
            _pairs(run, config_path)
            version = version_data_task(config_path)
            run.data_rev = version["data_rev"]
            _train(run, config_path)
            if config.steering.enabled:
                _vectors(run, config_path)
        _evaluate(run, config_path)
        _register(run, config_path)
        if deploy:
            _deploy(run, config_path)
        result = run.summary(time.perf_counter() - started)
        create_markdown_artifact(key="retrain-summary", markdown=render_summary(result))
        create_table_artifact(key="retrain-metrics", table=summary_table(result))
        logger.info(
            "retrain done: data %s; retrained %s; cached %s; failed %s",
            result["data_rev"], _names(result, "retrained"), _names(result, "cached"),
            ", ".join(result["failed"]) or "none",
        )  # fmt: skip
    if result["failed"]:
        reasons = "; ".join(f"{slug}: {why}" for slug, why in result["failed"].items())
        return Failed(message=f"persona(s) failed: {reasons}", data=result)
    return result


class _Run:
    """What the flow knows about each persona so far: step outcomes, results, failures."""

    def __init__(self, config: FoundryConfig, plan: RetrainPlan, force: bool) -> None:
        self.config, self.plan, self.force = config, plan, force
        self.data_rev = ""
        self.outcomes: dict[str, dict[str, str]] = {slug: {} for slug in plan.personas}
        self.results: dict[str, dict[str, Any]] = {slug: {} for slug in plan.personas}
        self.seconds: dict[str, float] = dict.fromkeys(plan.personas, 0.0)
        self.failed: dict[str, str] = {}
        self.evaluation: dict[str, Any] = {}

    @property
    def active(self) -> list[str]:
        return [slug for slug in self.plan.personas if slug not in self.failed]

    def cached(self, task: Task, key: str) -> Task:
        return task.with_options(**cache_options(self.config, key, force=self.force))

    def step(self, task: Task, key: str, *args: Any, **kwargs: Any) -> Any:
        """Run a shared step in this thread; its failure fails the run."""
        return self.cached(task, key)(*args, **kwargs)

    def record(self, slug: str, step: str, state: Any) -> Any:
        """Note a persona step's final state; a failure drops the persona from later steps."""
        if state.is_completed():
            outcome = "cached" if state.name == "Cached" else "done"
            result = state.result()
            self.outcomes[slug][step] = outcome
            self.results[slug][step] = result
            seconds = 0.0 if outcome == "cached" else float(result.get("seconds", 0.0))
            self.seconds[slug] += seconds
            emit(slug, step, outcome, seconds)
            return result
        reason = _reason(state)
        self.outcomes[slug][step] = "failed"
        self.failed[slug] = f"{step}: {reason}"
        logger.error("persona %s failed at %s: %s", slug, step, reason)
        emit(slug, step, "failed", detail=reason)
        return None

    def summary(self, seconds: float) -> dict[str, Any]:
        personas = {}
        for slug in self.plan.personas:
            outcomes = self.outcomes[slug]
            status = (
                "failed" if slug in self.failed
                else "cached" if outcomes and all(v == "cached" for v in outcomes.values())
                else "retrained"
            )  # fmt: skip
            personas[slug] = {
                "status": status,
                "content_hash": self.plan.content_hashes.get(slug, ""),
                "steps": outcomes,
                "seconds": round(self.seconds[slug], 1),
                **self.plan.stats.get(slug, {}),
                **{RESULT_KEYS[step]: value for step, value in self.results[slug].items()},
            }
        return {
            "data_rev": self.data_rev,
            "personas": personas,
            "not_trainable": self.plan.not_trainable,
            "evaluation": self.evaluation,
            "failed": self.failed,
            "cost_usd": round(
                sum(
                    float(r.get(s, {}).get("cost_usd", 0.0))
                    for r in self.results.values()
                    for s in ("synthesize", "pairs")
                ),
                6,
            ),  # fmt: skip
            "seconds": round(seconds, 1),
            "tracking_uri": self.plan.tracking_uri,
            "pending_stages": list(PENDING_STAGES),
        }


def _synthesize(run: _Run, config_path: str | None) -> None:
    share = run.config.synthesis.budget_usd / max(1, len(run.active))
    futures = {
        slug: run.cached(synth_persona_task, run.plan.keys[slug].synth)
        .with_options(
            retries=run.config.orchestration.retries,
            retry_delay_seconds=_backoff(run.config),
            retry_condition_fn=_worth_retrying,
        )
        .submit(config_path, slug, run.plan.provider, share)
        for slug in run.active
    }
    _collect(run, "synthesize", futures)


def _pairs(run: _Run, config_path: str | None) -> None:
    # One at a time: the generic negatives come from the base model, which uses every core.
    for slug in run.active:
        emit(slug, "pairs", "running")
        task = run.cached(pairs_persona_task, run.plan.keys[slug].pairs)
        run.record(slug, "pairs", task(config_path, slug, run.plan.provider, return_state=True))


def _pool_size(run: _Run) -> tuple[int, int]:
    """(processes, threads each) for the personas whose training (or vectors) is not cached."""
    keys = [run.plan.keys[slug] for slug in run.plan.personas]
    to_train = [
        k
        for k in keys
        if run.force
        or not has_result(run.config, k.train)
        or (k.vectors and not has_result(run.config, k.vectors))
    ]
    orchestration = run.config.orchestration
    return plan_workers(orchestration.workers, len(to_train), orchestration.threads_per_worker)


def _train(run: _Run, config_path: str | None) -> None:
    # The time limit is enforced on the worker process (`orchestration.train_timeout_s`).
    _per_persona(run, config_path, train_persona_task, "train")


def _vectors(run: _Run, config_path: str | None) -> None:
    # Each persona's vector reads its own DPO adapter and every persona's real texts.
    _per_persona(run, config_path, vectors_task, "vectors")


def _per_persona(run: _Run, config_path: str | None, task: Task, step: str) -> None:
    """Submit `task(config_path, slug, data_rev)` for every active persona under its `step` key
    (`PersonaKeys.<step>`) and record each outcome."""
    futures = {
        slug: run.cached(task, getattr(run.plan.keys[slug], step)).submit(
            config_path, slug, run.data_rev
        )
        for slug in run.active
    }
    _collect(run, step, futures)


def _evaluate(run: _Run, config_path: str | None) -> None:
    if not run.active:
        return
    current = [
        p
        for p in run.plan.peers
        if has_result(run.config, run.plan.keys[p].train)
        and (not run.plan.keys[p].vectors or has_result(run.config, run.plan.keys[p].vectors))
    ]
    slugs = [*run.active, *current]
    emit("", "evaluate", "running")
    task = run.cached(evaluation_task, run.plan.evaluation_key(run.config, slugs)).with_options(
        timeout_seconds=run.config.orchestration.eval_timeout_s
    )
    state = task(config_path, slugs, run.data_rev, return_state=True)
    if state.is_completed():
        run.evaluation = {**state.result(), "cached": state.name == "Cached"}
        emit("", "evaluate", "cached" if run.evaluation["cached"] else "done")
        return
    reason = f"evaluation: {_reason(state)}"
    emit("", "evaluate", "failed", detail=reason)
    for slug in run.active:  # nothing can be gated without metrics
        run.failed[slug] = reason
        run.outcomes[slug]["evaluate"] = "failed"


def _register(run: _Run, config_path: str | None) -> None:
    # One at a time: registrations write the same tracking store.
    for slug in run.active:
        emit(slug, "register", "running")
        state = run.cached(register_persona_task, run.plan.keys[slug].registration)(
            config_path, slug, run.data_rev, run.plan.content_hashes[slug],
            run.evaluation.get("folder"), run.evaluation.get("run_id", ""), return_state=True,
        )  # fmt: skip
        run.record(slug, "register", state)


def _deploy(run: _Run, config_path: str | None) -> None:
    for slug in run.active:
        registered = run.results[slug].get("register") or {}
        if registered.get("decision") != "promoted" or run.outcomes[slug].get("register") != "done":
            continue
        state = deploy_task.with_options(
            retries=run.config.orchestration.retries,
            retry_delay_seconds=_backoff(run.config),
            retry_condition_fn=_worth_retrying,
        )(config_path, slug, registered["version"], return_state=True)
        run.record(slug, "deploy", state)


def _collect(run: _Run, step: str, futures: dict[str, Any]) -> None:
    for slug in futures:
        emit(slug, step, "running")
    by_future = {id(future): slug for slug, future in futures.items()}
    for future in as_completed(list(futures.values())):
        future.wait()
        run.record(by_future[id(future)], step, future.state)


def _backoff(config: FoundryConfig) -> list[float]:
    first = config.orchestration.retry_delay_s
    return [first * 2**attempt for attempt in range(max(1, config.orchestration.retries))]


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what may pass next time (network, rate limits), not bad keys or bad data."""
    from foundry.errors import FoundryError
    from foundry.synthesis.jobs import RequestsFailedError

    try:
        state.result()
    except RequestsFailedError:  # outages, rate limits: may pass next time
        return True
    except FoundryError:  # bad keys, bad data, the budget: the same again would fail again
        return False
    except Exception:  # noqa: BLE001 - anything else (network, disk) may be transient
        return True
    return False


def _reason(state: Any) -> str:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the failure is what we report
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return state.message or state.name


def _names(result: dict[str, Any], status: str) -> str:
    return (
        ", ".join(s for s, row in result["personas"].items() if row["status"] == status) or "none"
    )
