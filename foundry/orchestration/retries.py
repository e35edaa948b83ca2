"""How the flows retry a remote step (synthesis, deployment, debates on a served target) that
failed whole.

Public entry points: `retry_options(config)` (the `Task.with_options(**...)` for a retried step:
`orchestration.retries`, delays doubling from `orchestration.retry_delay_s`, and only transient
failures), `served_retry_options(config)` (the same for a step that talks to a served target
through the `openai` client: only that client's transient errors), `retry_delays(config)`,
`is_worth_retrying(task, task_run, state)` and `is_served_outage(task, task_run, state)`.
"""

from __future__ import annotations

from typing import Any

from foundry.config import FoundryConfig
from foundry.errors import FoundryError
from foundry.logs import get_logger
from foundry.synthesis.jobs import RequestsFailedError

logger = get_logger(__name__)


def retry_options(config: FoundryConfig) -> dict[str, Any]:
    """`Task.with_options(**...)` that retries a step's transient failures with backoff."""
    return {
        "retries": config.orchestration.retries,
        "retry_delay_seconds": retry_delays(config),
        "retry_condition_fn": is_worth_retrying,
    }


def retry_delays(config: FoundryConfig) -> list[float]:
    """Seconds before each retry: `orchestration.retry_delay_s`, then twice as long each time."""
    first = config.orchestration.retry_delay_s
    return [first * 2**attempt for attempt in range(max(1, config.orchestration.retries))]


def is_worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what may pass next time (network, rate limits), not bad keys or bad data."""
    try:
        state.result()
    except RequestsFailedError:  # outages, rate limits: may pass next time
        return True
    except FoundryError:  # bad keys, bad data, the budget: the same again would fail again
        return False
    except Exception:  # noqa: BLE001 - anything else (network, disk) may be transient
        return True
    return False


def served_retry_options(config: FoundryConfig) -> dict[str, Any]:
    """`Task.with_options(**...)` that retries a step whose served target failed transiently."""
    return {
        "retries": config.orchestration.retries,
        "retry_delay_seconds": retry_delays(config),
        "retry_condition_fn": is_served_outage,
    }


def is_served_outage(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a served target's transient errors (lost connection or timeout, 429, 5xx), which
    outlasted the `openai` client's own retries; not bad keys, unknown models, bad data or bugs."""
    import openai

    try:
        state.result()
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
        logger.warning("served target failed transiently (%s); retrying", type(exc).__name__)
        return True
    except Exception:  # noqa: BLE001 - anything else fails the same way again: no retry
        return False
    return False
