"""What the `retrain` flow knows about each persona as it goes: step outcomes, results, failures.

Public entry points: `RetrainRun` (records each persona step's final Prefect state, drops a failed
persona from the later steps, sizes the training pool, and builds the run summary the flow returns),
`failure_reason(state)` and `names_with_status(result, status)`.
"""

from __future__ import annotations

from typing import Any

from prefect import Task

from foundry.config import FoundryConfig
from foundry.logs import get_logger
from foundry.orchestration.plan import RetrainPlan
from foundry.orchestration.run_cache import cache_options, has_result
from foundry.orchestration.run_events import emit
from foundry.orchestration.run_keys import digest
from foundry.training.pool import plan_workers

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
    "merge": "merge",
}


class RetrainRun:
    """What the flow knows about each persona so far: step outcomes, results, failures."""

    def __init__(self, config: FoundryConfig, plan: RetrainPlan, force: bool) -> None:
        self.config, self.plan, self.force = config, plan, force
        self.data_rev = ""
        everyone = [*plan.personas, *plan.derived]
        self.outcomes: dict[str, dict[str, str]] = {slug: {} for slug in everyone}
        self.results: dict[str, dict[str, Any]] = {slug: {} for slug in everyone}
        self.seconds: dict[str, float] = dict.fromkeys(everyone, 0.0)
        self.failed: dict[str, str] = {}
        self.evaluation: dict[str, Any] = {}
        self.merge_keys: dict[str, str] = {}  # derived persona -> its merge step's key

    @property
    def active(self) -> list[str]:
        """The selected personas that have not failed, in plan order."""
        return [slug for slug in self.plan.personas if slug not in self.failed]

    @property
    def active_derived(self) -> list[str]:
        """The derived personas that have not failed (merged after training), in plan order."""
        return [slug for slug in self.plan.derived if slug not in self.failed]

    def fail(self, slug: str, step: str, reason: str) -> None:
        """Fail `slug` at `step` without running it (e.g. a derived persona whose source failed)."""
        self.failed[slug] = f"{step}: {reason}"
        self.outcomes[slug][step] = "failed"
        logger.error("persona %s failed at %s: %s", slug, step, reason)
        emit(slug, step, "failed", detail=reason)

    def model_key(self, slug: str) -> str:
        """What the persona's evaluated variants depend on: its train (and vectors) key, or a
        derived persona's merge key."""
        return self.merge_keys[slug] if slug in self.plan.derived else self.plan.keys[slug].model

    def registration_key(self, slug: str) -> str:
        """A persona's registration key; a derived persona's also covers its sources' (its
        lineage tag names their registered versions)."""
        if slug not in self.plan.derived:
            return self.plan.keys[slug].registration
        sources = [self.plan.keys[s].registration for s in self.plan.derived[slug]
                   if s in self.plan.keys]  # fmt: skip
        registry = self.config.registry.model_dump(mode="json")
        return digest("register", self.merge_keys[slug], sources, self.plan.tracking_uri, registry)

    def cached(self, task: Task, key: str) -> Task:
        """`task` cached under `key` (refreshed when the run is forced)."""
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
        reason = failure_reason(state)
        self.outcomes[slug][step] = "failed"
        self.failed[slug] = f"{step}: {reason}"
        logger.error("persona %s failed at %s: %s", slug, step, reason)
        emit(slug, step, "failed", detail=reason)
        return None

    def fail_active(self, step: str, reason: str) -> None:
        """Fail every active persona at a shared `step` (nothing can be gated without it)."""
        for slug in [*self.active, *self.active_derived]:
            self.failed[slug] = reason
            self.outcomes[slug][step] = "failed"

    def pool_size(self) -> tuple[int, int]:
        """(processes, threads each) for the personas whose training (or vectors) is not cached."""
        keys = [self.plan.keys[slug] for slug in self.plan.personas]
        to_train = [
            k
            for k in keys
            if self.force
            or not has_result(self.config, k.train)
            or (k.vectors and not has_result(self.config, k.vectors))
        ]
        orchestration = self.config.orchestration
        if orchestration.executor == "ray":  # the pool only builds the base and the pairs
            return plan_workers(1, 1, 0)
        return plan_workers(orchestration.workers, len(to_train), orchestration.threads_per_worker)

    def evaluation_personas(self) -> list[str]:
        """The active personas, then the peers whose adapters (and vectors) are current."""
        current = [
            p
            for p in self.plan.peers
            if has_result(self.config, self.plan.keys[p].train)
            and (
                not self.plan.keys[p].vectors or has_result(self.config, self.plan.keys[p].vectors)
            )
        ]
        return [*self.active, *current]

    def promoted_versions(self) -> dict[str, int]:
        """Persona -> version, for the personas this run registered and promoted to champion."""
        promoted = {}
        for slug in [*self.active, *self.active_derived]:
            registered = self.results[slug].get("register") or {}
            if (
                registered.get("decision") == "promoted"
                and self.outcomes[slug].get("register") == "done"
            ):
                promoted[slug] = registered["version"]
        return promoted

    def summary(self, seconds: float) -> dict[str, Any]:
        """The run's result: per-persona rows, evaluation, failures, cost and time."""
        personas = {}
        for slug in [*self.plan.personas, *self.plan.derived]:
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
            "derived": self.plan.derived,
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


def failure_reason(state: Any) -> str:
    """The first line of a failed state's error (or its message)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the failure is what we report
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return state.message or state.name


def names_with_status(result: dict[str, Any], status: str) -> str:
    """The personas of a run summary with `status`, comma-separated (`none` when there are none)."""
    return (
        ", ".join(s for s, row in result["personas"].items() if row["status"] == status) or "none"
    )
