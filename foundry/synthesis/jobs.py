"""What every synthesis provider takes and gives back: jobs, results, usage, cost and the budget.

A provider (`anthropic`, `offline`, `local`) turns `GenerationJob`s into `GenerationResult`s and
hands each result to a sink as soon as it exists, so the caller can save it before the next one:
a killed run never loses what was paid for. The `Budget` is shared by all jobs of a run: a job is
started only when its worst-case cost still fits, so the cap holds even with requests in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from foundry.errors import FoundryError
from foundry.synthesis.config import PriceConfig

Mode = Literal["online", "batch", "offline", "local"]

# Claude tokenizes English at roughly 3.5-4 characters a token; 3 over-estimates on purpose, so
# the budget's worst case is an upper bound.
CHARS_PER_TOKEN_ESTIMATE = 3


class SynthesisError(FoundryError):
    """Synthesis cannot run or cannot go on (bad input, provider refused, nothing to ground on)."""


class ProviderAuthError(SynthesisError):
    """The provider rejected the credentials; retrying cannot help."""


class RequestsFailedError(SynthesisError):
    """Some requests failed after their own retries (outages, rate limits); a later try may pass."""


@dataclass(frozen=True)
class GenerationJob:
    """One request. `key` is the cache key: a hash of provider, model, prompts and parameters."""

    key: str
    system: str
    user: str
    max_tokens: int
    temperature: float
    persona: str
    # Structured inputs for providers that do not read prompts (the offline composer); not sent.
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them (Anthropic's `usage` fields)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


@dataclass(frozen=True)
class GenerationResult:
    key: str
    text: str
    provider: str
    model: str
    usage: Usage
    cost_usd: float
    duration_s: float
    mode: Mode
    stop_reason: str = ""
    retries: int = 0


ResultSink = Callable[[GenerationJob, GenerationResult], None]
ProgressHook = Callable[[int], None]


@dataclass
class RunReport:
    """What one provider call did: counts, retries, money, and why it stopped early if it did."""

    completed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    skipped_for_budget: int = 0
    retries: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    @property
    def stopped_by_budget(self) -> bool:
        return self.skipped_for_budget > 0


class Provider(Protocol):
    name: str
    model: str

    def generate(
        self,
        jobs: Sequence[GenerationJob],
        sink: ResultSink,
        budget: Budget,
        progress: ProgressHook | None = None,
    ) -> RunReport:
        """Run `jobs`, calling `sink` once per finished job and `progress(1)` per job done."""
        ...


def cost_usd(usage: Usage, prices: PriceConfig, is_batch: bool = False) -> float:
    """The dollar cost of `usage` at `prices` (the batch discount applies to every part)."""
    total = (
        usage.input_tokens * prices.input_per_mtok
        + usage.output_tokens * prices.output_per_mtok
        + usage.cache_creation_input_tokens * prices.cache_write_per_mtok
        + usage.cache_read_input_tokens * prices.cache_read_per_mtok
    ) / 1_000_000
    return total * (prices.batch_discount if is_batch else 1.0)


def estimate_cost_usd(job: GenerationJob, prices: PriceConfig, is_batch: bool = False) -> float:
    """An upper bound on the job's cost: every input token at the dearer input price, plus
    `max_tokens` of output."""
    input_tokens = (len(job.system) + len(job.user)) // CHARS_PER_TOKEN_ESTIMATE + 16
    input_price = max(prices.input_per_mtok, prices.cache_write_per_mtok)
    worst = (input_tokens * input_price + job.max_tokens * prices.output_per_mtok) / 1_000_000
    return worst * (prices.batch_discount if is_batch else 1.0)


class Budget:
    """A run's dollar cap. Reserve a job's worst case before starting it; settle when it ends.

    Not thread-safe: online jobs share one asyncio event loop, so no lock is needed.
    """

    def __init__(self, limit_usd: float) -> None:
        if limit_usd <= 0:
            raise SynthesisError(
                f"the budget must be more than 0 dollars, got {limit_usd}; pass --budget USD "
                "or set `synthesis.budget_usd`"
            )
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0

    @property
    def left_usd(self) -> float:
        return self.limit_usd - self.spent_usd - self.reserved_usd

    def try_reserve(self, estimate_usd: float) -> bool:
        """Hold `estimate_usd` for a job about to start; False when it would break the cap."""
        if estimate_usd > self.left_usd:
            return False
        self.reserved_usd += estimate_usd
        return True

    def settle(self, estimate_usd: float, actual_usd: float) -> None:
        """Release the job's reservation and record what it really cost (0 when it failed)."""
        self.reserved_usd = max(0.0, self.reserved_usd - estimate_usd)
        self.spent_usd += actual_usd

    def charge(self, actual_usd: float) -> None:
        """Record money spent without a reservation (a batch already paid for by an earlier run)."""
        self.spent_usd += actual_usd
