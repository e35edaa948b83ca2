"""A served target as a debate speaker: its endpoint, key and the `model` name of each persona.

`served_speaker(config, contracts, slugs, variant, target, base_url)` builds a `ServedSpeaker`
on the official `openai` client (its retries cover a target's transient errors: 429, 5xx, lost
connections). What each variant is on a served target:
- `dpo`: the persona's deployed adapter (`deploy.records.served_models`: the slug on `foundry
  serve`, the recorded served name on vLLM, Together and Fireworks);
- `prompt`, `steer`, `dpo+steer`: on `local` only (`foundry serve`): the base with the contract as
  system prompt, or the request's `persona_vector` steering the base or the adapter. The other
  targets are not asked for them: their base model name is theirs, not the project's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deploy.local import BASE_NAME
from deploy.records import served_models
from foundry.config import FoundryConfig, load_settings
from foundry.data.framing import contract_system_prompt
from foundry.data.schemas import PersonaContract
from foundry.debate.config import DebateConfig
from foundry.debate.speakers import ServedModel, ServedSpeaker
from foundry.debate.transcript import DebateError

DEFAULT_URLS = {
    "local": "http://127.0.0.1:8000/v1",
    "together": "https://api.together.xyz/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1",
}
KEY_VARIABLES = {
    "local": "FOUNDRY_SERVE_API_KEY",
    "vllm": "FOUNDRY_SERVE_API_KEY",
    "together": "TOGETHER_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
}
REQUEST_TIMEOUT_S = 600.0  # a CPU server answers a batch of turns in minutes, not seconds


def endpoint(config: FoundryConfig, target: str, base_url: str | None) -> str:
    """The OpenAI-compatible base URL (ending in /v1) of `target`."""
    settings = load_settings()
    url = (
        base_url
        or {
            "local": config.deploy.local.url and config.deploy.local.url.rstrip("/") + "/v1",
            "vllm": config.deploy.vllm.url and config.deploy.vllm.url.rstrip("/") + "/v1",
            "together": settings.together_base_url,
            "fireworks": settings.fireworks_base_url,
        }.get(target)
        or DEFAULT_URLS.get(target, "")
    )
    if not url:
        raise DebateError(
            f"no URL for target {target}: pass --base-url or set `deploy.{target}.url` in "
            "foundry.yaml"
        )
    return url


def api_key(target: str) -> str:
    """The key the target wants; `foundry serve` and vLLM without `--api-key` take any."""
    settings = load_settings()
    secret = {
        "local": settings.serve_api_key,
        "vllm": settings.serve_api_key,
        "together": settings.together_api_key,
        "fireworks": settings.fireworks_api_key,
    }.get(target)
    if secret is not None:
        return secret.get_secret_value()
    if target in ("together", "fireworks"):
        raise DebateError(f"set {KEY_VARIABLES[target]} to debate through {target}")
    return "no-key"  # the openai client wants one; an open server ignores it


def served_speaker(
    config: FoundryConfig,
    contracts: Mapping[str, PersonaContract],
    slugs: Sequence[str],
    variant: str,
    target: str,
    settings: DebateConfig,
    base_url: str | None = None,
) -> ServedSpeaker:
    """A speaker for `variant` of each persona in `slugs` on `target`.

    Raises:
        DebateError: the variant is not served there, a key or URL is missing, or a persona
            has no deployment on the target.
    """
    import openai

    from deploy import DeployError

    if variant != "dpo" and target != "local":
        raise DebateError(
            f"variant {variant} is served by `foundry serve` only (--target local); on {target} "
            "debate the deployed adapters (--variant dpo), or use --target in-process"
        )
    if variant == "sft":
        raise DebateError("served targets serve the DPO adapter: use --variant dpo")
    try:
        names = served_models(config, list(slugs), target) if variant.startswith("dpo") else {}
    except DeployError as exc:
        raise DebateError(str(exc)) from None
    models = {slug: _served(contracts[slug], variant, names.get(slug, "")) for slug in slugs}
    client = openai.OpenAI(
        base_url=endpoint(config, target, base_url),
        api_key=api_key(target),
        max_retries=3,
        timeout=REQUEST_TIMEOUT_S,
    )
    return ServedSpeaker(
        target, client, models, settings.max_new_tokens, settings.temperature, settings.concurrency
    )


def _served(contract: PersonaContract, variant: str, adapter: str) -> ServedModel:
    steer = (("persona_vector", contract.slug),) if variant.endswith("steer") else ()
    if variant == "prompt":
        return ServedModel(BASE_NAME, contract_system_prompt(contract))
    if variant == "steer":
        return ServedModel(BASE_NAME, None, steer)
    return ServedModel(adapter, None, steer)
