"""The smoke test every target shares: one chat completion addressed to the served adapter name.

Each target passes its own `chat(model, messages, max_tokens) -> str` (its SDK or HTTP client);
the test times it and turns any failure or an empty answer into a `DeployError` naming the target
and the model, which is what makes a deploy roll back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from deploy import DeployError

Chat = Callable[[str, list[dict[str, str]], int], str]


class NotServing(DeployError):
    """The target has no running server to ask (e.g. vLLM with only a launch spec written): the
    deploy is recorded as untested rather than rolled back."""


@dataclass(frozen=True)
class SmokeResult:
    model: str
    text: str
    latency_s: float


def smoke_test(target: str, chat: Chat, model: str, prompt: str, max_tokens: int) -> SmokeResult:
    """Ask `model` one question through `chat`; its answer and how long it took.

    Raises:
        DeployError: the call failed or the answer is empty.
    """
    started = time.perf_counter()
    try:
        text = chat(model, [{"role": "user", "content": prompt}], max_tokens)
    except NotServing:
        raise
    except DeployError as exc:
        raise DeployError(f"smoke test on {target}: {model}: {exc}") from None
    except Exception as exc:  # the SDKs raise their own error types; all mean "not serving"
        raise DeployError(
            f"smoke test on {target}: {model} failed: {type(exc).__name__}: {exc}"
        ) from None
    if not (text or "").strip():
        raise DeployError(f"smoke test on {target}: {model} answered with empty text")
    return SmokeResult(model, text, round(time.perf_counter() - started, 3))
