"""One Messages API request, as online and batch mode both make it: shape, retries, accounting.

`AnthropicRequests` builds a request's parameters (the system prompt is one cached block),
calls the API with our own retry policy (the SDK's is off so retries are counted and logged;
401/403 become `ProviderAuthError`, other failures `JobFailed`), and turns a served Message
into a `GenerationResult` whose usage and cost are added to the run's report. It also opens
the SDK clients. `anthropic_provider` (online) and `anthropic_batches` both import it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anthropic

from foundry.logs import get_logger
from foundry.synthesis.config import SynthesisConfig
from foundry.synthesis.jobs import (
    GenerationJob,
    GenerationResult,
    ProviderAuthError,
    RunReport,
    Usage,
    cost_usd,
)

logger = get_logger(__name__)

T = TypeVar("T")
PROVIDER_NAME = "anthropic"


class JobFailed(Exception):
    """A request that retrying cannot (or can no longer) save; `reason` goes in the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe_error(exc: anthropic.APIError) -> str:
    """Describe an API error for a report or a log line, without the request's content.

    Args:
        exc: The error the SDK raised.

    Returns:
        `429 rate_limit_error: <server message>`, or the error's class name and message.
    """
    if isinstance(exc, anthropic.APIStatusError):
        return f"{exc.status_code} {exc.type or 'error'}: {exc.api_message or exc.message}"
    if isinstance(exc, anthropic.APIConnectionError):
        return f"connection error ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc.message}"


def _is_transient(exc: anthropic.APIError) -> bool:
    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(exc, anthropic.APIStatusError) and (
        exc.status_code == 429 or exc.status_code >= 500
    )


def _retry_after_s(exc: anthropic.APIError) -> float | None:
    """The server's `retry-after-ms` / `retry-after` (seconds) hint, when it sent one."""
    if not isinstance(exc, anthropic.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue  # absent, or an HTTP date: fall back to our own backoff
    return None


def _usage_of(message: Any) -> Usage:
    usage = message.usage
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_input_tokens=usage.cache_read_input_tokens or 0,
    )


class AnthropicRequests:
    """Build, send (with retries) and account for Messages API requests.

    Args:
        config: The `synthesis` section: model, timeout, retries, backoff, prices.
        api_key: The Anthropic API key (never logged nor put in an error message).
        base_url: Another API host (a proxy, or a fake server in tests); None for Anthropic's.
        sleep: Blocking sleep between batch polls and batch retries.
        async_sleep: Sleep between online retries.
    """

    def __init__(
        self,
        config: SynthesisConfig,
        api_key: str,
        base_url: str | None,
        sleep: Callable[[float], None],
        async_sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.config = config
        self.model = config.model
        self.sleep = sleep
        self._api_key = api_key
        self._base_url = base_url
        self._async_sleep = async_sleep

    def sync_client(self) -> anthropic.Anthropic:
        """A blocking client with the SDK's own retries off (batch calls)."""
        return anthropic.Anthropic(**self._client_options())

    def async_client(self) -> anthropic.AsyncAnthropic:
        """An asyncio client with the SDK's own retries off (online calls)."""
        return anthropic.AsyncAnthropic(**self._client_options())

    def _client_options(self) -> dict[str, Any]:
        # Our own retry loop counts and logs retries, so the SDK's are off.
        return {
            "api_key": self._api_key,
            "base_url": self._base_url,
            "max_retries": 0,
            "timeout": self.config.timeout_s,
        }

    def params(self, job: GenerationJob) -> dict[str, Any]:
        """Messages API parameters; the persona's system prompt is one cached block.

        Args:
            job: The request to send.

        Returns:
            Keyword arguments for `messages.create`, or a batch request's `params`.
        """
        # No `temperature`: API version 2026-10-21 (what anthropic 2.x sends) rejects sampling
        # parameters with a 400, even 1.0, and the SDK no longer takes them.
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": job.max_tokens,
            "messages": [{"role": "user", "content": job.user}],
        }
        if job.system:  # the API rejects empty text blocks
            block = {"type": "text", "text": job.system, "cache_control": {"type": "ephemeral"}}
            params["system"] = [block]
        return params

    def _retry_delay_s(self, exc: anthropic.APIError, attempt: int) -> float:
        """Seconds to wait before retry `attempt + 1`.

        Raises:
            ProviderAuthError: On 401/403.
            JobFailed: When the error is not transient or the retries are used up.
        """
        if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
            raise self._auth_error(exc) from None
        if not _is_transient(exc):
            raise JobFailed(describe_error(exc)) from None
        if attempt >= self.config.max_retries:
            raise JobFailed(f"{describe_error(exc)} (gave up after {attempt} retries)") from None
        hint = _retry_after_s(exc)
        if hint is not None:
            delay = min(hint, self.config.max_backoff_s)
        else:  # equal jitter: half the exponential step, plus up to as much again at random
            step = min(self.config.backoff_s * 2**attempt, self.config.max_backoff_s)
            delay = step / 2 + random.uniform(0, step / 2)
        status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else "connection"
        logger.warning(
            "Anthropic request failed (%s), retry %d of %d in %.2f s",
            status, attempt + 1, self.config.max_retries, delay,
        )  # fmt: skip
        return delay

    def _auth_error(self, exc: anthropic.APIStatusError) -> ProviderAuthError:
        if exc.status_code == 401:
            what = "rejected the API key (401 authentication_error)"
        else:
            what = f"refused the request (403 permission_error, model {self.model})"
        message = (
            f"Anthropic {what}; check ANTHROPIC_API_KEY, or run with --provider offline "
            f"(request id {exc.request_id})"
        )
        return ProviderAuthError(message.replace(self._api_key, "***"))

    async def call_async(
        self, request: Callable[[], Awaitable[T]], report: RunReport
    ) -> tuple[T, int]:
        """Await `request()` with our retry policy, counting retries in `report`.

        Args:
            request: Makes one API call.
            report: The run's report; `retries` goes up by one per retry.

        Returns:
            The call's answer and the number of retries it took.

        Raises:
            ProviderAuthError: The key was rejected (401/403).
            JobFailed: The error is not transient, or the retries are used up.
        """
        attempt = 0
        while True:
            try:
                return await request(), attempt
            except anthropic.APIError as exc:
                delay = self._retry_delay_s(exc, attempt)
            report.retries += 1
            attempt += 1
            await self._async_sleep(delay)

    def call_sync(self, request: Callable[[], T], report: RunReport) -> T:
        """Call `request()` with our retry policy (batch calls); see `call_async`.

        Args:
            request: Makes one API call.
            report: The run's report; `retries` goes up by one per retry.

        Returns:
            The call's answer.

        Raises:
            ProviderAuthError: The key was rejected (401/403).
            JobFailed: The error is not transient, or the retries are used up.
        """
        attempt = 0
        while True:
            try:
                return request()
            except anthropic.APIError as exc:
                delay = self._retry_delay_s(exc, attempt)
            report.retries += 1
            attempt += 1
            self.sleep(delay)

    def finish(
        self,
        job: GenerationJob,
        message: Any,
        started: float,
        retries: int,
        report: RunReport,
        is_batch: bool = False,
    ) -> GenerationResult:
        """Turn a served Message into a result and add its usage and cost to the report.

        Args:
            job: The request that was served.
            message: The API's Message.
            started: `time.monotonic()` when the job (or its batch) started.
            retries: Retries the request took.
            report: The run's report; `completed`, `usage` and `cost_usd` go up.
            is_batch: Price at batch rates and mark the result `batch`.

        Returns:
            The result, with the text of all text blocks joined.
        """
        usage = _usage_of(message)
        text = "".join(block.text for block in message.content if block.type == "text")
        result = GenerationResult(
            key=job.key,
            text=text,
            provider=PROVIDER_NAME,
            model=message.model or self.model,
            usage=usage,
            cost_usd=cost_usd(usage, self.config.prices, is_batch),
            duration_s=time.monotonic() - started,
            mode="batch" if is_batch else "online",
            stop_reason=message.stop_reason or "",
            retries=retries,
        )
        report.completed += 1
        report.usage = report.usage + usage
        report.cost_usd += result.cost_usd
        return result
