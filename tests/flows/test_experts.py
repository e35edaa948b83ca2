"""Style and reasoning experts (`training.experts: style+reasoning`) on a small tiny base: what each
expert trains on, the combined adapter against the math, the learned gate, and registration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from foundry.config import load_config
from foundry.data.validation import validate_personas
from foundry.errors import ConfigError
from foundry.training.artifacts import TrainingError, TrainingSummary
from foundry.training.datasets import (
    SYNTHETIC_DIRNAME,
    TURNS_FILENAME,
    sft_examples,
    taught_position_rows,
)
from foundry.training.experts import EXPERTS, GATE_FILENAME, expert_path
from tests.conftest import SAMPLE_DIR, make_project

SLUG = "jonah-okafor"
CONFIG = """
personas: {include: [jonah-okafor, tobias-renn]}
base_model: {tiny: {pretrain_steps: 30, hidden_size: 64, intermediate_size: 128,
  vocab_size: 1000, batch_size: 8}}
training:
  experts: style+reasoning
  expert_weights: {style: 0.6, reasoning: 1.3}
  lora: {r: 4, alpha: 8, dropout: 0.0}
  sft: {max_steps: 4, eval_steps: 2, batch_size: 4, max_length: 96}
  dpo: {max_steps: 2, eval_steps: 2, batch_size: 2, max_length: 96}
"""


def _project(root: Path, config_text: str = CONFIG) -> Path:
    make_project(root, config_text=config_text)
    shutil.copytree(SAMPLE_DIR, root / "data")
    return root


def _delta(folder: Path, weight: float = 1.0) -> dict[str, object]:
    """module -> weight * scaling * B @ A of the adapter in `folder`."""
    from safetensors.torch import load_file

    adapter = json.loads((folder / "adapter_config.json").read_text())
    scaling = adapter["lora_alpha"] / adapter["r"]
    tensors = load_file(folder / "adapter_model.safetensors")
    return {
        key.removesuffix(".lora_A.weight"): weight
        * scaling
        * (tensors[key.replace("lora_A", "lora_B")] @ tensors[key])
        for key in tensors
        if key.endswith("lora_A.weight")
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch

    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo, train_sft
    from foundry.training.base_model import ensure_base

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = _project(tmp_path_factory.mktemp("experts") / "project")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    sft = train_sft(config, SLUG, data_rev="rev-1")
    dpo = train_dpo(config, SLUG, pairs=load_pairs(config, SLUG), data_rev="rev-1")
    yield {"root": root, "config": config, "sft": sft, "dpo": dpo}
    torch.set_num_threads(threads)


def test_each_expert_trains_on_its_own_rows(trained) -> None:
    config = trained["config"]
    summary = validate_personas(config, [SLUG])
    persona, framing = summary.personas[0], summary.topic_split.framing
    corpus_train = [i for i in persona.items if i.split == "train"]
    synthetic = config.data_dir / SYNTHETIC_DIRNAME / SLUG / TURNS_FILENAME
    everything, _ = sft_examples(persona, framing, synthetic)
    sft_dir = config.adapter_dir(SLUG, "sft")
    style = TrainingSummary.model_validate_json(
        (expert_path(sft_dir, "style") / "training_summary.json").read_text()
    )
    reasoning = TrainingSummary.model_validate_json(
        (expert_path(sft_dir, "reasoning") / "training_summary.json").read_text()
    )
    # The style expert saw the persona's own texts only; the reasoning expert everything else.
    assert style.examples_train == len(corpus_train)
    assert 0 < reasoning.examples_train
    assert style.examples_train + reasoning.examples_train >= len(everything)
    combined = trained["sft"].summary
    assert combined.experts == {"style": 0.6, "reasoning": 1.3}
    assert combined.examples_train == style.examples_train + reasoning.examples_train
    assert combined.lora.r == 2 * config.training.lora.r  # cat: the experts' ranks stacked


def test_combined_adapter_is_the_weighted_sum_of_the_experts(trained) -> None:
    import torch

    for stage in ("sft", "dpo"):
        folder = trained["config"].adapter_dir(SLUG, stage)
        combined = _delta(folder)
        style = _delta(expert_path(folder, "style"), 0.6)
        reasoning = _delta(expert_path(folder, "reasoning"), 1.3)
        assert set(combined) == set(style) == set(reasoning)
        for module, delta in combined.items():
            torch.testing.assert_close(delta, style[module] + reasoning[module])


def test_dpo_trains_the_reasoning_expert_only(trained) -> None:
    import torch
    from safetensors.torch import load_file

    config = trained["config"]
    sft_dir, dpo_dir = config.adapter_dir(SLUG, "sft"), config.adapter_dir(SLUG, "dpo")

    def weights(folder: Path, expert: str) -> dict:
        return load_file(expert_path(folder, expert) / "adapter_model.safetensors")

    for key, tensor in weights(sft_dir, "style").items():  # the voice is kept as it was
        assert torch.equal(tensor, weights(dpo_dir, "style")[key])
    moved = [
        key
        for key, tensor in weights(sft_dir, "reasoning").items()
        if not torch.equal(tensor, weights(dpo_dir, "reasoning")[key])
    ]
    assert moved
    assert trained["dpo"].summary.stage == "dpo"
    assert trained["dpo"].summary.experts == {"style": 0.6, "reasoning": 1.3}


def test_combined_adapter_loads_like_any_adapter(trained) -> None:
    from foundry.training.adapters import attach_adapters, check_adapters
    from foundry.training.base_model import load_base

    folder = trained["config"].adapter_dir(SLUG, "dpo")
    check_adapters({"p": folder})
    base = load_base(trained["config"])
    model = attach_adapters(base.model, {"p": folder})
    assert "p" in model.peft_config


def test_learned_gate_picks_the_lowest_validation_nll_and_installs_it(trained) -> None:
    """`foundry train --stage combine` with `expert_gate: learned` recombines the installed
    experts without training: the gate's grid is scored on validation examples only, the
    installed adapter is the pair it chose, and scoring the installed folder independently gives
    the NLL the gate recorded."""
    from typer.testing import CliRunner

    from foundry.cli.main import app
    from foundry.training.adapters import attach_adapters
    from foundry.training.base_model import load_base
    from foundry.training.experts import learn_gate
    from foundry.training.scoring import ScoreRow, score_completions

    config_file = trained["root"] / "foundry.yaml"
    config_file.write_text(config_file.read_text() + "  expert_gate: learned\n")
    gated = load_config(config_file)
    dpo_dir = gated.adapter_dir(SLUG, "dpo")
    experts_before = {n: _delta(expert_path(dpo_dir, n)) for n in EXPERTS}
    args = ["train", "--config", str(config_file), "--persona", SLUG, "--stage", "combine"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = validate_personas(gated, [SLUG])
    persona, framing = summary.personas[0], summary.topic_split.framing
    synthetic = gated.data_dir / SYNTHETIC_DIRNAME / SLUG / TURNS_FILENAME
    positions = taught_position_rows(gated, persona.contract, summary.topic_split)
    validation = sft_examples(persona, framing, None)[1]
    validation += sft_examples(persona, framing, synthetic, positions, corpus=False)[1]
    gate = learn_gate(gated, {n: expert_path(dpo_dir, n) for n in EXPERTS}, validation)
    assert gate["examples"] == len(validation) > 0
    assert gate["nll"] == min(row["nll"] for row in gate["grid"])
    assert len({(r["style"], r["reasoning"]) for r in gate["grid"]}) == len(gate["grid"]) == 35
    recorded = json.loads((dpo_dir / GATE_FILENAME).read_text())
    assert recorded["chosen"] == gate["chosen"]
    installed = TrainingSummary.model_validate_json((dpo_dir / "training_summary.json").read_text())
    assert installed.experts == gate["chosen"]
    for name in EXPERTS:  # the experts themselves were not retrained
        for module, delta in _delta(expert_path(dpo_dir, name)).items():
            assert (delta == experts_before[name][module]).all()
    base = load_base(gated)
    model = attach_adapters(base.model, {"gated": dpo_dir})
    rows = [
        ScoreRow(ex["prompt"][-1]["content"], ex["completion"][0]["content"], adapter="gated")
        for ex in validation
    ]
    scores = score_completions(model, base.tokenizer, rows)
    nll = sum(s.nll for s in scores) / sum(s.tokens for s in scores)
    assert nll == pytest.approx(gate["nll"], abs=2e-4)
    config_file.write_text(config_file.read_text().replace("  expert_gate: learned\n", ""))


def test_combine_refuses_an_adapter_without_experts(tmp_path) -> None:
    from foundry.training.adapter_training import recombine_experts

    root = _project(tmp_path / "p")
    config = load_config(root / "foundry.yaml")
    with pytest.raises(TrainingError, match="holds no experts to combine"):
        recombine_experts(config, SLUG, "dpo")


def test_experts_refuse_a_managed_backend_and_a_single_sft(tmp_path) -> None:
    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo

    root = _project(
        tmp_path / "p", CONFIG.replace("training:\n", "training:\n  backend: together\n")
    )
    with pytest.raises(
        ConfigError, match="training.*experts: style\\+reasoning.*backend: together"
    ):
        load_config(root / "foundry.yaml")
    root = _project(tmp_path / "q")
    config = load_config(root / "foundry.yaml")
    single = config.adapter_dir(SLUG, "sft")  # an SFT adapter from `experts: single`
    single.mkdir(parents=True)
    (single / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(TrainingError, match="reasoning"):
        train_dpo(config, SLUG, pairs=load_pairs(config, SLUG))


def test_both_experts_are_registered_in_one_version(trained, monkeypatch, tmp_path) -> None:
    from mlflow import MlflowClient

    from registry.loading import download_adapter
    from registry.registration import register_retrain
    from registry.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = trained["config"]
    result = register_retrain(
        config, [SLUG], data_rev="rev-1", content_hashes={SLUG: "h"}, eval_folder=None
    )
    client = MlflowClient(tracking_uri=tracking_uri(config))
    version = client.get_model_version(f"persona-{SLUG}", str(result[SLUG]["version"]))
    run = client.get_run(version.run_id)
    installed = config.adapter_dir(SLUG, "dpo")
    summary = TrainingSummary.model_validate_json((installed / "training_summary.json").read_text())
    assert summary.experts is not None
    assert json.loads(run.data.params["experts"]) == summary.experts
    uri = f"models:/persona-{SLUG}/{version.version}"
    folder = download_adapter(uri, tracking_uri(config), tmp_path / "fetched")
    for name in ("", "experts/style/", "experts/reasoning/"):
        weights = f"{name}adapter_model.safetensors"
        assert (folder / weights).read_bytes() == (installed / weights).read_bytes()
