"""Config section for `foundry costs` (`costs:` in foundry.yaml): debate shape, prices, fallbacks.

EVERY PRICE HERE IS AN EXAMPLE LIST PRICE, not a quote: check each one against the provider's
pricing page (and your GPU contract) before deciding anything. The defaults are, roughly, a
Sonnet-class Claude model for `prompt`, an 8B base on Together/Fireworks serverless for
`serverless_lora`, and an on-demand H100 for `vllm`, `steering` and local training.
The `default_*` numbers are used only where the project has no measurement yet.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Every price field's description starts with this, so `foundry config show` says it too.
EXAMPLE = "Example list price (check it): "


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PromptApiPrices(_Section):
    """A prompt-only API (e.g. Claude): the persona's system prompt is sent with every turn."""

    input_per_mtok: float = Field(
        3.0,
        ge=0,
        description=EXAMPLE + "USD per million uncached input tokens.",
    )
    output_per_mtok: float = Field(
        15.0, ge=0, description=EXAMPLE + "USD per million output tokens."
    )
    cache_write_per_mtok: float = Field(
        3.75,
        ge=0,
        description=EXAMPLE + "USD per million input tokens written to the prompt cache.",
    )
    cache_read_per_mtok: float = Field(
        0.30,
        ge=0,
        description=EXAMPLE + "USD per million input tokens read from the prompt cache.",
    )
    use_cache: bool = Field(
        True,
        description="Cache each persona's system prompt: its first turn in a debate writes the "
        "cache, its later turns read it.",
    )
    min_cacheable_tokens: int = Field(
        1024,
        ge=0,
        description="Shortest prompt prefix the API caches (1024 on Sonnet); a shorter system "
        "prompt is billed as plain input.",
    )


class ServerlessLoraPrices(_Section):
    """Serverless multi-LoRA (Together, Fireworks): billed per token at the base model's price."""

    input_per_mtok: float = Field(0.20, ge=0, description=EXAMPLE + "USD per million input tokens.")
    output_per_mtok: float = Field(
        0.20, ge=0, description=EXAMPLE + "USD per million output tokens."
    )
    is_trained_on_provider: bool = Field(
        True,
        description="Train each adapter with the provider's fine-tuning (billed per training "
        "token); false: trained locally at `costs.training` GPU prices, then uploaded.",
    )
    train_per_mtok: float = Field(
        0.48,
        ge=0,
        description=EXAMPLE + "USD per million training tokens of the provider's LoRA tuning.",
    )
    upload_usd: float = Field(
        0.0,
        ge=0,
        description=EXAMPLE + "USD to upload and host one adapter (0 where hosting is free).",
    )


class SelfHostedPrices(_Section):
    """One GPU serving the base model (vLLM, or `foundry serve` for steering)."""

    gpu_usd_per_hour: float = Field(
        2.49, ge=0, description=EXAMPLE + "USD per hour of the serving GPU."
    )
    prefill_tokens_per_s: float = Field(
        8000.0,
        gt=0,
        description="Prompt tokens per second the GPU reads across concurrent requests (every "
        "prompt token counted: no prefix caching assumed).",
    )
    decode_tokens_per_s: float = Field(
        1200.0,
        gt=0,
        description="Output tokens per second the GPU writes across concurrent requests "
        "(measure yours with benchmarks/serving.py or vLLM's benchmark).",
    )
    utilization: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of billed GPU time spent serving; idle time divides into each "
        "debate's cost (0.5: half the billed hours are idle).",
    )
    min_billed_hours: float = Field(
        1.0, ge=0, description="Least GPU time billed for any run, however few debates it serves."
    )


class SteeringPrices(SelfHostedPrices):
    """Persona vectors on the base: served like vLLM, set up by extraction instead of training."""

    decode_tokens_per_s: float = Field(
        800.0,
        gt=0,
        description="Output tokens per second across concurrent requests with a steering hook "
        "(vLLM has no steering: this is a custom server such as `foundry serve`).",
    )
    extraction_gpu_hours: float = Field(
        0.1, ge=0, description="GPU hours to extract and sweep one persona's vector."
    )


class TrainingPrices(_Section):
    """Training one persona's adapters (SFT then DPO) on your own GPU."""

    gpu_usd_per_hour: float = Field(
        2.49, ge=0, description=EXAMPLE + "USD per hour of the training GPU."
    )
    tokens_per_s: float = Field(
        2500.0,
        gt=0,
        description="Training tokens per second on that GPU; used when no training summary "
        "from a real (not `tiny`) base gives the hours.",
    )


class CostsConfig(_Section):
    """What `foundry costs` assumes: the debate, the example prices, and fallback measurements."""

    turns_per_debate: int = Field(12, ge=1, description="Turns in one debate (all personas).")
    personas_per_debate: int = Field(
        2, ge=1, description="Personas taking turns in one debate (round robin)."
    )
    default_system_prompt_tokens: int = Field(
        1200, ge=0, description="Tokens of a persona's system prompt when no contract is found."
    )
    default_opening_tokens: int = Field(
        40, ge=0, description="Tokens of the debate prompt opening a debate when no topics exist."
    )
    default_turn_tokens: int = Field(
        300, ge=1, description="Output tokens of one turn when no turn or answer is recorded."
    )
    default_train_tokens: int = Field(
        2_000_000,
        ge=0,
        description="Training tokens of one persona (SFT + DPO) when no training summary exists.",
    )
    default_synthesis_usd: float = Field(
        0.5,
        ge=0,
        description="USD of one persona's synthetic data when nothing was synthesized yet (40 "
        "Claude turns at ~$0.01 each, with a constitution pass).",
    )
    prompt: PromptApiPrices = Field(default_factory=PromptApiPrices)
    serverless_lora: ServerlessLoraPrices = Field(default_factory=ServerlessLoraPrices)
    vllm: SelfHostedPrices = Field(default_factory=SelfHostedPrices)
    steering: SteeringPrices = Field(default_factory=SteeringPrices)
    training: TrainingPrices = Field(default_factory=TrainingPrices)
