"""Config section for synthesis and preference pairs (`synthesis:` in foundry.yaml).

Prices are per million tokens and only used for accounting and the budget cap; set them to your
model's list prices. The defaults are Sonnet-class prices ($3 input, $15 output, cache writes at
1.25x and reads at 0.1x the input price, batches at half): check them against Anthropic's page.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Move = Literal["claim", "challenge", "clarification", "concession", "reframe"]
MOVES: tuple[Move, ...] = ("claim", "challenge", "clarification", "concession", "reframe")
PairStrategy = Literal["cross_persona", "generic", "constitution_violation"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PriceConfig(_Section):
    input_per_mtok: float = Field(3.0, ge=0, description="USD per million uncached input tokens.")
    output_per_mtok: float = Field(15.0, ge=0, description="USD per million output tokens.")
    cache_write_per_mtok: float = Field(
        3.75, ge=0, description="USD per million input tokens written to the prompt cache."
    )
    cache_read_per_mtok: float = Field(
        0.30, ge=0, description="USD per million input tokens read from the prompt cache."
    )
    batch_discount: float = Field(
        0.5, gt=0, le=1, description="Multiplier on every price in batch mode (0.5: half price)."
    )


class FilterConfig(_Section):
    """Quality gates a generated turn must pass; rejected turns are kept with their reasons."""

    min_words: int = Field(20, ge=1, description="Shorter turns are rejected.")
    max_words: int = Field(400, ge=1, description="Longer turns are rejected.")
    near_duplicate_threshold: float = Field(
        0.6, gt=0, le=1, description="Word 3-gram Jaccard at or above which a turn is a duplicate."
    )
    max_copied_words: int = Field(
        20, ge=5, description="Longest run of words a turn may copy verbatim from the corpus."
    )
    min_attribution: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Least probability the corpus-trained classifier must give the turn's own "
        "persona (chance is 1 / personas; 0 turns the filter off); a persona whose own real "
        "texts fall short gets a lower bar (`real_pass_share`).",
    )
    real_pass_share: float = Field(
        0.75,
        gt=0,
        le=1,
        description="Share of a persona's own real validation texts its attribution bar must "
        "pass: where fewer reach `min_attribution`, the bar drops to the probability this share "
        "of them reach (it never rises above `min_attribution`).",
    )
    min_kept_turns: int = Field(
        8,
        ge=0,
        description="Least turns kept per persona: when the filters keep fewer, the turns "
        "rejected only by attribution are kept, best own-persona probability first, up to this "
        "many (0 turns the floor off).",
    )


class PairsConfig(_Section):
    mix: dict[PairStrategy, float] = Field(
        default_factory=lambda: {"cross_persona": 0.7, "generic": 0.3},
        description="Share of pairs per strategy; `constitution_violation` needs `anthropic`.",
    )
    max_pairs: int = Field(200, ge=1, description="Most pairs written per persona.")

    @field_validator("mix")
    @classmethod
    def _positive_shares(cls, mix: dict[str, float]) -> dict[str, float]:
        if not mix or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("give at least one strategy with a positive share, e.g. {generic: 1}")
        return mix


class SynthesisConfig(_Section):
    provider: Literal["auto", "anthropic", "offline", "local"] = Field(
        "auto", description="`auto`: Anthropic when ANTHROPIC_API_KEY is set, else offline."
    )
    model: str = Field("claude-sonnet-5-5", description="Anthropic model id for `anthropic`.")
    mode: Literal["online", "batch"] = Field(
        "online", description="`batch`: the Message Batches API (half price, minutes to hours)."
    )
    turns_per_persona: int = Field(
        40, ge=1, description="Debate turns requested per persona (spread over prompts x moves)."
    )
    moves: list[Move] = Field(
        default_factory=lambda: list(MOVES), description="Debate moves to generate, in turn."
    )
    dev_topic_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of topic groups whose turns and pairs form the validation split only.",
    )
    passages: int = Field(
        4, ge=1, description="Corpus passages retrieved for each prompt to ground the turn."
    )
    min_corpus_items: int = Field(
        5, ge=1, description="A persona needs this many train items to ground synthesis on."
    )
    max_tokens: int = Field(400, ge=16, description="Most output tokens per generated turn.")
    temperature: float = Field(
        1.0,
        ge=0,
        le=2,
        description="Sampling temperature of `local`; Anthropic's Messages API (SDK 2.x) takes "
        "none and samples at its default.",
    )
    concurrency: int = Field(16, ge=1, description="Requests in flight at once (online mode).")
    timeout_s: float = Field(60.0, gt=0, description="Timeout of one API request.")
    max_retries: int = Field(
        5, ge=0, description="Retries of a request on 429, 5xx and overloaded answers."
    )
    backoff_s: float = Field(
        1.0, gt=0, description="First retry delay; doubles per retry, with jitter."
    )
    max_backoff_s: float = Field(30.0, gt=0, description="Longest delay between retries.")
    batch_poll_s: float = Field(30.0, gt=0, description="Seconds between batch status checks.")
    budget_usd: float = Field(
        5.0, description="Most dollars one run may spend; it stops cleanly, keeping what is paid."
    )
    constitution_pass: bool = Field(
        False, description="Critique each turn against the constitution and revise (anthropic)."
    )
    template: str = Field(
        "debate-turn-v1", description="Prompt template name and version (foundry/prompts/)."
    )
    prices: PriceConfig = Field(default_factory=PriceConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    pairs: PairsConfig = Field(default_factory=PairsConfig)

    @field_validator("moves")
    @classmethod
    def _some_moves(cls, moves: list[str]) -> list[str]:
        if not moves:
            raise ValueError(f"give at least one move: {', '.join(MOVES)}")
        return list(dict.fromkeys(moves))

    @field_validator("budget_usd")
    @classmethod
    def _positive_budget(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(
                f"the budget must be more than 0 dollars, got {value}; set "
                "`synthesis.budget_usd` (or `--budget`) to what one run may spend, e.g. 5"
            )
        return value

    @model_validator(mode="after")
    def _length_bounds(self) -> SynthesisConfig:
        if self.filters.min_words >= self.filters.max_words:
            raise ValueError("`filters.min_words` must be below `filters.max_words`")
        return self
