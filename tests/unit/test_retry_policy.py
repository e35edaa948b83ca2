"""Which failed synthesis runs the retrain flow retries: transient ones only."""

from __future__ import annotations

import pytest

from foundry.errors import DataError
from foundry.orchestration.retries import is_worth_retrying
from foundry.synthesis.jobs import ProviderAuthError, RequestsFailedError, SynthesisError


class _State:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def result(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (RequestsFailedError("3 request(s) failed"), True),
        (ConnectionError("reset by peer"), True),
        (ProviderAuthError("key rejected"), False),
        (DataError("posts.jsonl, line 3: not valid JSON"), False),
        (SynthesisError("requests were left for the budget"), False),
    ],
)
def test_only_transient_failures_are_retried(error, retry):
    assert is_worth_retrying(None, None, _State(error)) is retry
