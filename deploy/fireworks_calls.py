"""Fireworks' SDK errors, described and retried.

Kept apart from `deploy.fireworks` (what the target asks Fireworks) because how a failure is read
and when it is tried again is one rule for every call: transient errors (5xx, 408, 429, no
answer) are retried with backoff, a status the caller expects is an answer, and every other error
becomes a `DeployError` with the HTTP status and Fireworks' own message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import fireworks
import httpx

from deploy import DeployError
from foundry.logs import get_logger

logger = get_logger(__name__)
T = TypeVar("T")

TRIES = 4  # attempts per call on transient errors; waits poll_s, 2 * poll_s, 4 * poll_s
MAX_RETRY_WAIT_S = 30.0


def failure(exc: fireworks.APIError | httpx.HTTPError) -> tuple[int | None, str]:
    """The HTTP status (None: no answer) and the service's own message for an error."""
    if isinstance(exc, httpx.HTTPStatusError):  # a signed URL (storage, not the API)
        return exc.response.status_code, exc.response.text[:300]
    if isinstance(exc, fireworks.APIResponseValidationError):
        return exc.status_code, f"unexpected answer: {exc.message}"
    if not isinstance(exc, fireworks.APIStatusError):
        return None, f"{type(exc).__name__}: {exc}"
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")  # inference errors: {"error": {"message": ...}}
        if isinstance(error, dict) and error.get("message"):
            return exc.status_code, str(error["message"])
        if body.get("message"):  # control plane errors: {"code": 5, "message": ...}
            return exc.status_code, str(body["message"])
    return exc.status_code, str(body or exc.message)[:300]


def call_with_retries(
    what: str,
    call: Callable[[], T],
    ok: tuple[int, ...],
    *,
    base_url: object,
    first_wait_s: float,
    on_retry: Callable[[], None],
) -> T | None:
    """`call()`, retried on transient errors (5xx, 408, 429, no answer) after `first_wait_s`,
    doubled each time (at most MAX_RETRY_WAIT_S), calling `on_retry` before each wait; None when
    it fails with a status in `ok`; any other failure is a `DeployError`."""
    for attempt in range(TRIES):
        try:
            return call()
        except (fireworks.APIError, httpx.HTTPError) as exc:
            status, message = failure(exc)
        if status in ok:
            return None
        is_transient = status is None or status in (408, 429) or status >= 500
        if not is_transient or attempt + 1 == TRIES:
            where = f"HTTP {status}" if status else f"no answer from {base_url}"
            raise DeployError(f"Fireworks {what}: {where}: {message}")
        on_retry()
        wait_s = min(first_wait_s * 2**attempt, MAX_RETRY_WAIT_S)
        error = f"HTTP {status}" if status else message
        logger.warning(
            "Fireworks %s: %s, retry %d/%d in %.1fs", what, error, attempt + 1, TRIES - 1, wait_s
        )
        time.sleep(wait_s)
    raise AssertionError("unreachable")  # the last attempt returns or raises
