"""The measured inputs of `foundry.costs.estimate`: this project's token counts and spend.

Kept apart from the cost arithmetic (`foundry.costs.estimate`) because reading the project's files
is its own concern: contracts and topics, synthetic turns and their usage, training summaries and
evaluation answers each give one `Measure`, or a `costs.default_*` value where they are absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.data.framing import debate_prompt, persona_system_prompt
from foundry.data.personas import discover_personas, load_contract, load_topics
from foundry.synthesis.generation_cache import GENERATIONS_FILENAME
from foundry.synthesis.jobs import CHARS_PER_TOKEN_ESTIMATE
from foundry.training.artifacts import SUMMARY_FILENAME
from foundry.training.config import TINY
from foundry.training.datasets import SYNTHETIC_DIRNAME, TURNS_FILENAME, read_jsonl_records

# Where `foundry.evaluation.run` writes its answers (EVAL_DIRNAME there; not imported: it
# loads the whole evaluation stack).
EVAL_ANSWERS = Path("eval") / "answers.jsonl"


@dataclass(frozen=True)
class Measure:
    """One input of the estimate, with where it came from (`is_measured`: this project's data)."""

    name: str
    value: float
    unit: str
    source: str
    is_measured: bool


@dataclass(frozen=True)
class MeasuredInputs:
    chars_per_token: Measure
    system_prompt_tokens: Measure
    opening_tokens: Measure
    turn_tokens: Measure
    train_tokens: Measure
    train_gpu_hours: Measure
    synthesis_usd: Measure

    def rows(self) -> list[Measure]:
        return [getattr(self, f.name) for f in fields(self)]


def measure_inputs(config: FoundryConfig) -> MeasuredInputs:
    """Token counts, training and synthesis spend from the project's files; defaults where absent.

    Read: the contracts and topics (`data/`), synthetic turns and generations
    (`data/synthetic/<slug>/`), evaluation answers (`<cache_dir>/eval/answers.jsonl`) and the
    adapters' `training_summary.json`. Claude-made turns calibrate characters per token; else
    the project's own estimate (`foundry.synthesis.jobs.CHARS_PER_TOKEN_ESTIMATE`) is used.
    """
    slugs = _persona_slugs(config)
    turns = [row for slug in slugs for row in _jsonl(_synthetic_file(config, slug, TURNS_FILENAME))]
    ratio = _chars_per_token(turns)
    summaries = _training_summaries(config, slugs)
    train_tokens = _train_tokens(config, summaries)
    return MeasuredInputs(
        chars_per_token=ratio,
        system_prompt_tokens=_system_prompt_tokens(config, slugs, ratio.value),
        opening_tokens=_opening_tokens(config, ratio.value),
        turn_tokens=_turn_tokens(config, turns, ratio.value),
        train_tokens=train_tokens,
        train_gpu_hours=_train_gpu_hours(config, summaries, train_tokens.value),
        synthesis_usd=_synthesis_usd(config, slugs),
    )


def _persona_slugs(config: FoundryConfig) -> list[str]:
    include = set(config.personas.include)
    return [s for s in discover_personas(config.personas_dir) if not include or s in include]


def _synthetic_file(config: FoundryConfig, slug: str, name: str) -> Path:
    return config.data_dir / SYNTHETIC_DIRNAME / slug / name


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl_records(path)] if path.is_file() else []


def _is_claude_turn(row: dict[str, Any]) -> bool:
    # Offline and local providers record words, not tokens; a revised turn's text is not the
    # output its usage counts.
    return (
        row.get("provider") == "anthropic"
        and _number(row, "output_tokens") > 0
        and not row.get("draft")
    )


def _chars_per_token(turns: list[dict[str, Any]]) -> Measure:
    claude = [row for row in turns if _is_claude_turn(row)]
    name, unit = "chars_per_token", "chars"
    if claude:
        chars = sum(len(str(row.get("text", ""))) for row in claude)
        value = chars / sum(_number(row, "output_tokens") for row in claude)
        return Measure(name, value, unit, f"{len(claude)} Claude turns: text / output_tokens", True)
    source = "project estimate CHARS_PER_TOKEN_ESTIMATE (errs towards more tokens)"
    return Measure(name, float(CHARS_PER_TOKEN_ESTIMATE), unit, source, False)


def _system_prompt_tokens(config: FoundryConfig, slugs: list[str], ratio: float) -> Measure:
    contracts = [load_contract(config.persona_dir(slug))[0] for slug in slugs]
    texts = [persona_system_prompt(c) for c in contracts if c is not None]
    name = "system_prompt_tokens"
    if not texts:
        default = config.costs.default_system_prompt_tokens
        return Measure(name, default, "tokens", "costs.default_system_prompt_tokens", False)
    value = round(sum(len(t) for t in texts) / len(texts) / ratio)
    source = f"{len(texts)} contracts: persona_system_prompt chars / chars_per_token"
    return Measure(name, value, "tokens", source, True)


def _opening_tokens(config: FoundryConfig, ratio: float) -> Measure:
    topics, _ = load_topics(config.topics_file)
    name = "opening_tokens"
    if not topics:
        default = config.costs.default_opening_tokens
        return Measure(name, default, "tokens", "costs.default_opening_tokens", False)
    chars = sum(len(debate_prompt(t)) for t in topics) / len(topics)
    source = f"{len(topics)} topics: debate prompt chars / chars_per_token"
    return Measure(name, round(chars / ratio), "tokens", source, True)


def _turn_tokens(config: FoundryConfig, turns: list[dict[str, Any]], ratio: float) -> Measure:
    name = "turn_tokens"
    claude = [row for row in turns if _is_claude_turn(row)]
    if claude:
        value = sum(_number(row, "output_tokens") for row in claude) / len(claude)
        return Measure(name, round(value), "tokens", f"{len(claude)} Claude turns' usage", True)
    texts = [str(row["text"]) for row in turns if row.get("text")]
    source = f"{len(texts)} synthetic turns: chars / chars_per_token"
    if not texts:
        answers = _jsonl(config.cache_dir / EVAL_ANSWERS)
        texts = [str(row["answer"]) for row in answers if row.get("answer")]
        source = (
            f"{len(texts)} evaluation answers (at most evaluation.max_new_tokens): "
            "chars / chars_per_token"
        )
    if texts:
        return Measure(
            name, round(sum(map(len, texts)) / len(texts) / ratio), "tokens", source, True
        )
    default = config.costs.default_turn_tokens
    return Measure(name, default, "tokens", "costs.default_turn_tokens", False)


def _training_summaries(config: FoundryConfig, slugs: list[str]) -> dict[str, list[dict]]:
    """persona -> its adapters' training summaries (SFT, DPO), personas without any left out."""
    found = {}
    for slug in slugs:
        paths = [config.adapter_dir(slug, stage) / SUMMARY_FILENAME for stage in ("sft", "dpo")]
        rows = [json.loads(p.read_text(encoding="utf-8")) for p in paths if p.is_file()]
        if rows:
            found[slug] = rows
    return found


def _train_tokens(config: FoundryConfig, summaries: dict[str, list[dict]]) -> Measure:
    name = "train_tokens"
    if not summaries:
        default = config.costs.default_train_tokens
        return Measure(name, default, "tokens/persona", "costs.default_train_tokens", False)
    per_persona = [sum(_number(r, "train_tokens") for r in rows) for rows in summaries.values()]
    count = sum(map(len, summaries.values()))
    source = f"{count} training summaries of {len(summaries)} personas (SFT + DPO)"
    if _is_tiny(summaries):
        source += "; tiny base: a real tokenizer counts differently"
    return Measure(name, sum(per_persona) / len(per_persona), "tokens/persona", source, True)


def _train_gpu_hours(
    config: FoundryConfig, summaries: dict[str, list[dict]], train_tokens: float
) -> Measure:
    name, unit = "train_gpu_hours", "h/persona"
    if summaries and not _is_tiny(summaries):
        seconds = [sum(_number(r, "seconds") for r in rows) for rows in summaries.values()]
        source = f"{len(seconds)} personas' training summaries (seconds)"
        return Measure(name, sum(seconds) / len(seconds) / 3600, unit, source, True)
    value = train_tokens / config.costs.training.tokens_per_s / 3600
    source = "train_tokens / costs.training.tokens_per_s"
    if summaries:
        source += " (timings of the tiny base do not transfer)"
    return Measure(name, value, unit, source, False)


def _synthesis_usd(config: FoundryConfig, slugs: list[str]) -> Measure:
    name, unit = "synthesis_usd", "USD/persona"
    spent = {}
    for slug in slugs:
        rows = _jsonl(_synthetic_file(config, slug, GENERATIONS_FILENAME))
        if rows:
            spent[slug] = sum(_number(row, "cost_usd") for row in rows)
    if not spent:
        return Measure(
            name, config.costs.default_synthesis_usd, unit, "costs.default_synthesis_usd", False
        )
    source = f"{len(spent)} personas' generations.jsonl cost_usd"
    return Measure(name, sum(spent.values()) / len(spent), unit, source, True)


def _is_tiny(summaries: dict[str, list[dict]]) -> bool:
    return any(
        str(r.get("base_model", "")).startswith(TINY) for rows in summaries.values() for r in rows
    )


def _number(row: dict[str, Any], key: str) -> float:
    value = row.get(key, 0)
    return float(value) if isinstance(value, int | float) else 0.0
