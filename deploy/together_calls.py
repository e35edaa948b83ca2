"""Together's SDK errors, described and retried, and the wait for a job Together runs.

Kept apart from `deploy.together` so the target and its endpoint helper (`deploy.together_endpoint`)
share one error type, one retry rule and one wait without importing each other. SDK errors become
`TogetherApiError` (a `DeployError`) with Together's status and message. 5xx, 429 and lost
connections are retried here: the SDK's own retries are off because they also retry the 409 that
means "already exists".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from deploy import DeployError
from deploy.config import TogetherTargetConfig
from deploy.together_upload import PutFailed
from foundry.logs import get_logger

logger = get_logger(__name__)
T = TypeVar("T")

ATTEMPTS = 3  # tries per call when Together answers 429/5xx or not at all


class TogetherApiError(DeployError):
    """Together answered with an error status (None: it did not answer)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


def describe(exc: Exception) -> tuple[int | None, str]:
    """The status and Together's message out of an SDK error (or a failed part PUT)."""
    status = exc.status if isinstance(exc, PutFailed) else getattr(exc, "status_code", None)
    if status is None:
        return None, f"no answer ({type(exc).__name__}: {exc})"
    body = exc.text if isinstance(exc, PutFailed) else getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            body = inner["message"]
    return status, f"HTTP {status}: {str(body)[:300]}"


def call_with_retries(
    what: str, call: Callable[[], T], delay_s: float, scrub: Callable[[str], str]
) -> T:
    """`call()`, retried on 429/5xx/no answer after `delay_s` (doubled after each failed try);
    every failure becomes TogetherApiError, its message passed through `scrub`."""
    import together

    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except (together.APIStatusError, together.APIConnectionError, PutFailed) as exc:
            status, text = describe(exc)
            error = TogetherApiError(scrub(f"Together {what}: {text}"), status)
            if status is not None and status != 429 and status < 500:
                raise error from None
        if attempt == ATTEMPTS:
            raise error
        delay = delay_s * 2 ** (attempt - 1)
        logger.warning("%s; try %d of %d in %.1f s", error, attempt + 1, ATTEMPTS, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


def poll_until(what: str, check: Callable[[], str | None], section: TogetherTargetConfig) -> None:
    """Call `check` every `poll_s` until it returns None (done) or `timeout_s` passes."""
    deadline = time.monotonic() + section.timeout_s
    while (state := check()) is not None:
        if time.monotonic() >= deadline:
            raise DeployError(
                f"{what} is not done after {section.timeout_s:g} s ({state}); raise "
                "`deploy.together.timeout_s` or deploy again later (the upload is reused)"
            )
        time.sleep(section.poll_s)
