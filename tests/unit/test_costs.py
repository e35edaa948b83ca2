"""`foundry costs`: the debate arithmetic, the measured inputs, the `costs:` config and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from foundry.config import FoundryConfig, load_config
from foundry.costs.config import PromptApiPrices, SelfHostedPrices
from foundry.costs.estimate import (
    break_even,
    debate_turns,
    estimate_costs,
    gpu_hours,
    measure_inputs,
    prompt_api_usd,
    self_hosted_usd,
)
from foundry.data.framing import persona_system_prompt
from foundry.data.personas import discover_personas, load_contract
from foundry.errors import ConfigError

PRICES = PromptApiPrices(
    input_per_mtok=3.0, output_per_mtok=15.0, cache_write_per_mtok=3.75, cache_read_per_mtok=0.3
)


def test_prompt_api_two_turn_debate_with_caching_matches_hand_arithmetic() -> None:
    # Two personas, one turn each: both write their own 2000-token system prompt to the cache.
    # Turn 1 reads opening 50; turn 2 reads opening 50 + turn 1's 300; each writes 300.
    turns = debate_turns(2, 2, system_tokens=2000, opening_tokens=50, turn_tokens=300)
    usd, cached = prompt_api_usd(turns, PRICES)
    by_hand = (2 * 2000 * 3.75 + (50 + 350) * 3.0 + 2 * 300 * 15.0) / 1e6
    assert usd == pytest.approx(by_hand) and by_hand == pytest.approx(0.0252)
    assert cached == 0


def test_prompt_api_third_turn_reads_the_speakers_cached_system_prompt() -> None:
    turns = debate_turns(3, 2, system_tokens=2000, opening_tokens=50, turn_tokens=300)
    usd, cached = prompt_api_usd(turns, PRICES)
    third = (2000 * 0.3 + (50 + 600) * 3.0 + 300 * 15.0) / 1e6
    assert usd == pytest.approx(0.0252 + third)
    assert cached == 2000


def test_prompt_api_bills_a_system_prompt_under_the_cache_minimum_as_plain_input() -> None:
    turns = debate_turns(3, 2, system_tokens=500, opening_tokens=0, turn_tokens=100)
    usd, cached = prompt_api_usd(turns, PRICES)
    plain = ((500 * 3 + (0 + 100 + 200)) * 3.0 + 300 * 15.0) / 1e6
    assert usd == pytest.approx(plain) and cached == 0
    no_cache = PRICES.model_copy(update={"use_cache": False})
    long_turns = debate_turns(3, 2, system_tokens=2000, opening_tokens=0, turn_tokens=100)
    assert prompt_api_usd(long_turns, no_cache)[0] == pytest.approx(
        ((3 * 2000 + 300) * 3.0 + 300 * 15.0) / 1e6
    )


def test_input_tokens_grow_with_every_turn_as_the_transcript_does() -> None:
    n, s, d, t = 12, 900, 40, 250
    turns = debate_turns(n, 3, system_tokens=s, opening_tokens=d, turn_tokens=t)
    inputs = [turn.input_tokens for turn in turns]
    assert inputs[0] == s + d and all(b - a == t for a, b in zip(inputs, inputs[1:], strict=False))
    assert sum(inputs) == n * (s + d) + t * n * (n - 1) // 2
    assert [turn.speaker for turn in turns[:6]] == [0, 1, 2, 0, 1, 2]
    assert sum(turn.output_tokens for turn in turns) == n * t


def test_self_hosted_cost_divides_by_utilization_and_bills_at_least_the_minimum() -> None:
    prices = SelfHostedPrices(
        gpu_usd_per_hour=3.6, prefill_tokens_per_s=1000, decode_tokens_per_s=100,
        utilization=0.5, min_billed_hours=1.0,
    )  # fmt: skip
    hours = gpu_hours(36_000, 3_600, prices)  # 36 s reading + 36 s writing
    assert hours == pytest.approx(72 / 3600)
    assert self_hosted_usd(hours, 1000, prices) == pytest.approx(1000 * 72 / 3600 / 0.5 * 3.6)
    assert self_hosted_usd(hours, 1, prices) == pytest.approx(3.6)  # the one-hour minimum


def test_break_even_pays_back_each_personas_set_up_or_never() -> None:
    assert break_even(1.0, 0.01, 0.11, personas=2) == pytest.approx(20.0)
    assert break_even(1.0, 0.2, 0.11, personas=2) is None


def _fresh_config(tmp_path: Path, text: str = "") -> FoundryConfig:
    (tmp_path / "foundry.yaml").write_text(text)
    return load_config(tmp_path / "foundry.yaml")


def test_fresh_project_uses_the_defaults_and_says_so(tmp_path: Path) -> None:
    config = _fresh_config(tmp_path, "costs: {default_turn_tokens: 111, default_train_tokens: 7}\n")
    inputs = measure_inputs(config)
    assert not any(m.is_measured for m in inputs.rows())
    assert inputs.turn_tokens.value == 111 and "default_turn_tokens" in inputs.turn_tokens.source
    assert inputs.system_prompt_tokens.value == config.costs.default_system_prompt_tokens
    assert inputs.train_tokens.value == 7
    report = estimate_costs(config)
    assert [a.name for a in report.approaches] == ["prompt", "serverless_lora", "vllm", "steering"]
    assert all(a.per_debate_usd > 0 for a in report.approaches)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _claude_turn(text: str, output_tokens: int) -> dict:
    return {"persona": "jonah-okafor", "text": text, "prompt": "p", "provider": "anthropic",
            "output_tokens": output_tokens, "draft": ""}  # fmt: skip


def _summary(stage: str, tokens: int, seconds: float, base: str) -> str:
    return json.dumps({"persona": "jonah-okafor", "stage": stage, "base_model": base,
                       "train_tokens": tokens, "seconds": seconds})  # fmt: skip


def _write_measurements(config: FoundryConfig, base: str = "Qwen/Qwen2.5-7B-Instruct") -> None:
    synthetic = config.data_dir / "synthetic" / "jonah-okafor"
    _write_jsonl(
        synthetic / "turns.jsonl", [_claude_turn("a" * 700, 200), _claude_turn("b" * 500, 100)]
    )
    _write_jsonl(synthetic / "generations.jsonl", [{"key": "k1", "cost_usd": 0.25},
                                                   {"key": "k2", "cost_usd": 0.5}])  # fmt: skip
    for stage, tokens, seconds in (("sft", 600_000, 1800.0), ("dpo", 400_000, 900.0)):
        folder = config.adapter_dir("jonah-okafor", stage)
        folder.mkdir(parents=True)
        (folder / "training_summary.json").write_text(_summary(stage, tokens, seconds, base))


def test_measured_counts_are_read_from_turns_usage_and_training_summaries(
    config: FoundryConfig,
) -> None:
    _write_measurements(config)
    inputs = measure_inputs(config)
    assert inputs.chars_per_token.value == pytest.approx(1200 / 300)
    assert inputs.turn_tokens.value == 150
    assert inputs.train_tokens.value == 1_000_000
    assert inputs.train_gpu_hours.value == pytest.approx(2700 / 3600)
    assert inputs.synthesis_usd.value == pytest.approx(0.75)
    slugs = discover_personas(config.personas_dir)
    contracts = [load_contract(config.persona_dir(s))[0] for s in slugs]
    chars = sum(len(persona_system_prompt(c)) for c in contracts) / len(contracts)
    assert inputs.system_prompt_tokens.value == round(chars / 4.0)
    assert all(m.is_measured for m in inputs.rows())
    assert "Claude turns" in inputs.turn_tokens.source


def test_tiny_base_timings_are_not_taken_as_gpu_hours(config: FoundryConfig) -> None:
    _write_measurements(config, base="tiny:tiny-0123")
    inputs = measure_inputs(config)
    assert inputs.train_tokens.is_measured and "tiny" in inputs.train_tokens.source
    assert not inputs.train_gpu_hours.is_measured
    expected = 1_000_000 / config.costs.training.tokens_per_s / 3600
    assert inputs.train_gpu_hours.value == pytest.approx(expected)


def test_offline_turns_give_lengths_but_not_a_token_ratio(config: FoundryConfig) -> None:
    rows = [{"text": "x" * 300, "prompt": "p", "provider": "offline", "output_tokens": 50}] * 2
    _write_jsonl(config.data_dir / "synthetic" / "tobias-renn" / "turns.jsonl", rows)
    inputs = measure_inputs(config)
    assert not inputs.chars_per_token.is_measured and inputs.chars_per_token.value == 3.0
    assert inputs.turn_tokens.is_measured and inputs.turn_tokens.value == 100


def test_evaluation_answers_give_turn_lengths_when_nothing_was_synthesized(
    config: FoundryConfig,
) -> None:
    answers = [{"variant": "dpo", "answer": "y" * 90}, {"variant": "sft", "answer": "z" * 150}]
    _write_jsonl(config.cache_dir / "eval" / "answers.jsonl", answers)
    inputs = measure_inputs(config)
    assert inputs.turn_tokens.value == 40 and "evaluation answers" in inputs.turn_tokens.source


def test_eval_answers_path_is_where_evaluation_writes_them() -> None:
    from foundry.costs.estimate import EVAL_ANSWERS
    from foundry.evaluation.run import EVAL_DIRNAME

    assert EVAL_ANSWERS.parts == (EVAL_DIRNAME, "answers.jsonl")


def test_estimate_prices_each_approach_from_the_measured_inputs(config: FoundryConfig) -> None:
    _write_measurements(config)
    report = estimate_costs(config, turns=4, personas=2)
    inputs, costs = report.inputs, config.costs
    d, t = inputs.opening_tokens.value, inputs.turn_tokens.value
    bare_in, out = 4 * d + t * 6, 4 * t  # no system prompt: the persona is in the weights
    by_name = {a.name: a for a in report.approaches}
    lora = by_name["serverless_lora"]
    assert (lora.input_tokens, lora.output_tokens) == (bare_in, out)
    assert lora.per_debate_usd == pytest.approx((bare_in + out) * 0.20 / 1e6)
    assert lora.setup_usd_per_persona == pytest.approx(0.75 + 1_000_000 * 0.48 / 1e6)
    vllm = by_name["vllm"]
    busy_s = bare_in / 8000 + out / 1200
    assert vllm.per_debate_usd == pytest.approx(busy_s / 3600 / 0.5 * 2.49)
    assert vllm.setup_usd_per_persona == pytest.approx(0.75 + 2700 / 3600 * 2.49)
    assert by_name["steering"].setup_usd_per_persona == pytest.approx(0.1 * 2.49)
    prompt = by_name["prompt"]
    assert prompt.input_tokens == bare_in + 4 * inputs.system_prompt_tokens.value
    saving = prompt.per_debate_usd - lora.per_debate_usd
    assert lora.break_even_debates == pytest.approx(2 * lora.setup_usd_per_persona / saving)
    assert costs.turns_per_debate == 12  # the overrides did not touch the config


def test_config_validation_error_names_the_costs_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`costs\.vllm\.utilization`.*got 0"):
        _fresh_config(tmp_path, "costs: {vllm: {utilization: 0}}\n")
    with pytest.raises(ConfigError, match=r"`costs\.prompt\.input_per_tok`.*input_per_mtok"):
        _fresh_config(tmp_path, "costs: {prompt: {input_per_tok: 1}}\n")


def _app() -> typer.Typer:
    from foundry.cli.costs import costs

    app = typer.Typer()
    app.command("costs")(costs)
    app.command("noop")(lambda: None)  # two commands: `costs` stays a subcommand
    return app


def test_cli_prints_the_tables_and_writes_valid_json(config: FoundryConfig, tmp_path: Path) -> None:
    out = tmp_path / "out" / "costs.json"
    args = ["costs", "--config", str(config.source), "--turns", "5", "--personas", "3"]
    result = CliRunner().invoke(_app(), [*args, "--json", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("prompt", "serverless_lora", "vllm", "steering", "Inputs", "measured", "assumed"):
        assert text in result.output
    data = json.loads(out.read_text())
    assert (data["turns_per_debate"], data["personas_per_debate"]) == (5, 3)
    assert [a["name"] for a in data["approaches"]] == [
        "prompt",
        "serverless_lora",
        "vllm",
        "steering",
    ]
    system = data["inputs"]["system_prompt_tokens"]
    assert system["is_measured"] and system["value"] > 0
    d, t = data["inputs"]["opening_tokens"]["value"], data["inputs"]["turn_tokens"]["value"]
    assert data["approaches"][1]["input_tokens"] == 5 * d + t * 10
    assert not list(out.parent.glob(".*.tmp"))


def test_cli_reports_an_invalid_costs_key_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "foundry.yaml").write_text("costs: {turns_per_debate: 0}\n")
    result = CliRunner().invoke(_app(), ["costs", "--config", str(tmp_path / "foundry.yaml")])
    assert result.exit_code == 1
    assert "costs.turns_per_debate" in result.output
