"""What a debate and a persona set-up cost under each way of serving personas.

Entry point: `estimate_costs(config, turns=None, personas=None)` returns a `CostReport`: the
inputs (`foundry.costs.inputs.measure_inputs`: each a `Measure` saying whether it was measured
in this project, and from what, or fell back to a `costs.default_*` value) and one
`ApproachCost` per approach:

- `prompt`: a prompt-only API; every turn sends the persona's system prompt (cached when long
  enough) plus the transcript so far;
- `serverless_lora`: Together/Fireworks multi-LoRA at the base's per-token price; the persona
  lives in the adapter, so no system prompt; set-up: synthetic data, training, upload;
- `vllm`: self-hosted multi-LoRA on a GPU billed by the hour; set-up: data and local training;
- `steering`: persona vectors on a self-hosted base; set-up: vector extraction only.

A debate is `turns` turns among `personas` personas taking turns in order; turn k's prompt is the
speaker's system prompt, the opening debate prompt and the k - 1 turns before it, so input tokens
grow with every turn (`debate_turns`). Prices come from `costs:` (example list prices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from foundry.config import FoundryConfig
from foundry.costs.config import PromptApiPrices, SelfHostedPrices
from foundry.costs.inputs import EVAL_ANSWERS as EVAL_ANSWERS  # re-exported: tests read it here
from foundry.costs.inputs import MeasuredInputs, measure_inputs

PER_MTOK = 1_000_000
BATCH_DEBATES = 1000


@dataclass(frozen=True)
class TurnTokens:
    """One turn's tokens: the speaker (index), its whole prompt (system part included), output."""

    speaker: int
    input_tokens: int
    system_tokens: int
    output_tokens: int


@dataclass
class ApproachCost:
    name: str
    per_debate_usd: float
    setup_usd_per_persona: float
    per_1000_debates_usd: float
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    break_even_debates: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class CostReport:
    turns_per_debate: int
    personas_per_debate: int
    inputs: MeasuredInputs
    approaches: list[ApproachCost]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready numbers (what `foundry costs --json` writes)."""
        return {
            "turns_per_debate": self.turns_per_debate,
            "personas_per_debate": self.personas_per_debate,
            "prices_note": "example list prices from `costs:`; check them before deciding",
            "inputs": {m.name: asdict(m) for m in self.inputs.rows()},
            "approaches": [asdict(a) for a in self.approaches],
        }


def debate_turns(
    turns: int, personas: int, system_tokens: int, opening_tokens: int, turn_tokens: int
) -> list[TurnTokens]:
    """The debate's turns, speakers in rotation; turn k reads the k - 1 turns before it."""
    return [
        TurnTokens(
            speaker=k % personas,
            input_tokens=system_tokens + opening_tokens + k * turn_tokens,
            system_tokens=system_tokens,
            output_tokens=turn_tokens,
        )
        for k in range(turns)
    ]


def prompt_api_usd(turns: Sequence[TurnTokens], prices: PromptApiPrices) -> tuple[float, int]:
    """(USD, input tokens read from the cache) of a debate on a prompt-only API.

    A speaker's first turn writes its system prompt to the cache and later turns read it; a
    system prompt under `min_cacheable_tokens` (or with caching off) is plain input.
    """
    seen: set[int] = set()
    usd = 0.0
    cached = 0
    for turn in turns:
        rest = turn.input_tokens - turn.system_tokens
        system_price = prices.input_per_mtok
        if prices.use_cache and turn.system_tokens >= prices.min_cacheable_tokens:
            is_read = turn.speaker in seen
            system_price = prices.cache_read_per_mtok if is_read else prices.cache_write_per_mtok
            cached += turn.system_tokens if is_read else 0
        seen.add(turn.speaker)
        usd += (
            turn.system_tokens * system_price
            + rest * prices.input_per_mtok
            + turn.output_tokens * prices.output_per_mtok
        ) / PER_MTOK
    return usd, cached


def gpu_hours(input_tokens: int, output_tokens: int, prices: SelfHostedPrices) -> float:
    """Busy GPU hours to read `input_tokens` and write `output_tokens` at the configured rates."""
    seconds = (
        input_tokens / prices.prefill_tokens_per_s + output_tokens / prices.decode_tokens_per_s
    )
    return seconds / 3600


def self_hosted_usd(busy_hours: float, debates: int, prices: SelfHostedPrices) -> float:
    """USD of `debates` debates of `busy_hours` each: idle time added, at least the minimum bill."""
    billed = max(debates * busy_hours / prices.utilization, prices.min_billed_hours)
    return billed * prices.gpu_usd_per_hour


def break_even(
    setup_usd: float, per_debate_usd: float, baseline_usd: float, personas: int
) -> float | None:
    """Debates of the same personas after which an approach's set-up is paid back against the
    prompt-only baseline (None: it never is, its debates cost as much or more)."""
    saving = baseline_usd - per_debate_usd
    return personas * setup_usd / saving if saving > 0 else None


def estimate_costs(
    config: FoundryConfig, turns: int | None = None, personas: int | None = None
) -> CostReport:
    """Every approach's cost per debate, per persona set-up and per 1000 debates.

    Args:
        config: the project (its measurements and its `costs:` prices).
        turns: turns per debate (default `costs.turns_per_debate`).
        personas: personas per debate (default `costs.personas_per_debate`).
    """
    costs = config.costs
    turns = turns or costs.turns_per_debate
    personas = personas or costs.personas_per_debate
    inputs = measure_inputs(config)
    opening, turn = int(inputs.opening_tokens.value), int(inputs.turn_tokens.value)
    system = int(inputs.system_prompt_tokens.value)
    with_system = debate_turns(turns, personas, system, opening, turn)
    bare = debate_turns(turns, personas, 0, opening, turn)  # the persona is in the weights
    extraction_usd = costs.steering.extraction_gpu_hours * costs.steering.gpu_usd_per_hour
    approaches = [
        _prompt(with_system, config),
        _serverless(bare, inputs, config),
        _self_hosted(
            "vllm", bare, costs.vllm, _lora_setup_usd(inputs, config, local=True),
            "set-up: synthetic data + local training (train_gpu_hours at costs.training)",
        ),
        _self_hosted(
            "steering", bare, costs.steering, extraction_usd,
            "set-up: vector extraction (costs.steering.extraction_gpu_hours), no training",
        ),
    ]  # fmt: skip
    baseline = approaches[0].per_debate_usd
    for approach in approaches[1:]:
        approach.break_even_debates = break_even(
            approach.setup_usd_per_persona, approach.per_debate_usd, baseline, personas
        )
    return CostReport(turns, personas, inputs, approaches)


def _prompt(turns: Sequence[TurnTokens], config: FoundryConfig) -> ApproachCost:
    prices = config.costs.prompt
    usd, cached = prompt_api_usd(turns, prices)
    notes = []
    system = turns[0].system_tokens if turns else 0
    if prices.use_cache and system < prices.min_cacheable_tokens:
        notes.append(
            f"system prompt ({system} tokens) is under the {prices.min_cacheable_tokens}-token "
            "cache minimum: billed as plain input"
        )
    return ApproachCost(
        "prompt", usd, 0.0, usd * BATCH_DEBATES, _sum_in(turns), _sum_out(turns), cached, None,
        notes + ["no set-up: the contract is the persona"],
    )  # fmt: skip


def _serverless(
    turns: Sequence[TurnTokens], inputs: MeasuredInputs, config: FoundryConfig
) -> ApproachCost:
    prices = config.costs.serverless_lora
    usd = (
        _sum_in(turns) * prices.input_per_mtok + _sum_out(turns) * prices.output_per_mtok
    ) / PER_MTOK
    setup = _lora_setup_usd(inputs, config, local=not prices.is_trained_on_provider)
    where = "trained on the provider" if prices.is_trained_on_provider else "trained locally"
    return ApproachCost(
        "serverless_lora", usd, setup, usd * BATCH_DEBATES, _sum_in(turns), _sum_out(turns),
        notes=[f"set-up: synthetic data + adapter {where} + upload; no system prompt per turn"],
    )  # fmt: skip


def _lora_setup_usd(inputs: MeasuredInputs, config: FoundryConfig, local: bool) -> float:
    """One persona's adapter: its synthetic data, then training (local GPU or provider), upload."""
    costs = config.costs
    if local:
        training = inputs.train_gpu_hours.value * costs.training.gpu_usd_per_hour
    else:
        training = inputs.train_tokens.value * costs.serverless_lora.train_per_mtok / PER_MTOK
        training += costs.serverless_lora.upload_usd
    return inputs.synthesis_usd.value + training


def _self_hosted(
    name: str,
    turns: Sequence[TurnTokens],
    prices: SelfHostedPrices,
    setup_usd: float,
    setup_note: str,
) -> ApproachCost:
    busy = gpu_hours(_sum_in(turns), _sum_out(turns), prices)
    per_debate = busy / prices.utilization * prices.gpu_usd_per_hour
    minimum = prices.min_billed_hours * prices.gpu_usd_per_hour
    notes = [
        f"{busy * 3600:.1f} GPU-s busy per debate at {prices.utilization:.0%} utilization; "
        f"any run is billed at least ${minimum:.2f} ({prices.min_billed_hours:g} h)",
        setup_note,
    ]
    return ApproachCost(
        name, per_debate, setup_usd, self_hosted_usd(busy, BATCH_DEBATES, prices),
        _sum_in(turns), _sum_out(turns), notes=notes,
    )  # fmt: skip


def _sum_in(turns: Sequence[TurnTokens]) -> int:
    return sum(t.input_tokens for t in turns)


def _sum_out(turns: Sequence[TurnTokens]) -> int:
    return sum(t.output_tokens for t in turns)
