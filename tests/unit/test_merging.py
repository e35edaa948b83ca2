"""Adapter merging (`foundry.training.merging`) against the math, on a small random Llama:
`cat` is exactly the weighted sum of the sources' updates (negative weights subtract), `linear`
combines the factors separately (cross terms), and a merged folder reloads with identical logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from foundry.training.artifacts import TrainingError
from foundry.training.config import LoraSettings
from foundry.training.merging import MERGE_FILENAME, MergeSource, adapter_lora, merge_adapters

TARGETS = ["q_proj", "v_proj"]


def _base(seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _adapter(folder: Path, seed: int, r: int = 4, alpha: int = 8) -> Path:
    """A LoRA adapter with random A and B (an untrained one has B = 0: no update to merge)."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        _base(), LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGETS, init_lora_weights=False)
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn_like(parameter) * 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _deltas(folder: Path) -> dict[str, Any]:
    """{module: scaling * B @ A} of a saved adapter."""
    from safetensors.torch import load_file

    config = json.loads((folder / "adapter_config.json").read_text())
    scaling = config["lora_alpha"] / config["r"]
    tensors = load_file(folder / "adapter_model.safetensors")
    return {
        key.replace(".lora_A.weight", ""): scaling
        * tensors[key.replace("lora_A", "lora_B")]
        @ tensors[key]
        for key in tensors
        if key.endswith("lora_A.weight")
    }


def _logits(model):
    import torch

    with torch.no_grad():
        return model(torch.arange(10).unsqueeze(0)).logits


@pytest.fixture
def sources(tmp_path):
    return _adapter(tmp_path / "a", seed=1), _adapter(tmp_path / "b", seed=2)


def test_cat_is_exactly_the_weighted_sum_of_updates_and_the_logits_follow(tmp_path, sources):
    import torch

    first, second = sources
    weights = (0.7, -0.3)  # a blend that also subtracts
    merged = merge_adapters(
        _base(), [MergeSource(first, weights[0]), MergeSource(second, weights[1])], "cat",
        tmp_path / "merged",
    )  # fmt: skip
    a, b, m = _deltas(first), _deltas(second), _deltas(merged)
    assert set(m) == set(a) and len(m) == 2 * 2  # two layers x two target modules
    for key in m:
        assert torch.allclose(m[key], weights[0] * a[key] + weights[1] * b[key], atol=1e-6)

    # The merged adapter's logits equal the base with the weighted updates added by hand.
    from peft import PeftModel

    by_hand = _base()
    with torch.no_grad():
        for name, module in by_hand.named_modules():
            key = f"base_model.model.{name}"
            if key in m:
                module.weight += weights[0] * a[key] + weights[1] * b[key]
    loaded = PeftModel.from_pretrained(_base(), merged).eval()
    assert torch.allclose(_logits(loaded), _logits(by_hand), atol=1e-5)
    lineage = json.loads((merged / MERGE_FILENAME).read_text())
    assert [s["weight"] for s in lineage["sources"]] == list(weights)
    assert lineage["method"] == "cat" and len(lineage["sources"][0]["sha256"]) == 64
    # cat stacks the factors: the record of the merged adapter must carry the summed rank.
    like = LoraSettings(r=4, alpha=8, dropout=0.05, target_modules=list(TARGETS))
    shape = adapter_lora(merged, like)
    assert shape.r == 8 and shape.dropout == 0.05 and shape.target_modules == list(TARGETS)
    assert shape.alpha == json.loads((merged / "adapter_config.json").read_text())["lora_alpha"]


def test_linear_combines_the_factors_so_its_update_has_cross_terms(tmp_path, sources):
    import torch
    from safetensors.torch import load_file

    first, second = sources
    merged = merge_adapters(
        _base(), [MergeSource(first, 0.5), MergeSource(second, 0.5)], "linear", tmp_path / "m"
    )
    a, b, m = _deltas(first), _deltas(second), _deltas(merged)
    raw = {p: load_file(p / "adapter_model.safetensors") for p in (first, second)}
    config = json.loads((merged / "adapter_config.json").read_text())
    assert config["r"] == 4  # the sources' rank, not their sum
    for key in m:
        half_sum = 0.5 * a[key] + 0.5 * b[key]
        assert not torch.allclose(m[key], half_sum, atol=1e-4)
        # (sum sqrt(w s) B)(sum sqrt(w s) A), s = 8/4, scaled by the merged adapter's own alpha/r
        root = (0.5 * 2.0) ** 0.5
        lora_a = sum(root * raw[p][f"{key}.lora_A.weight"] for p in raw)
        lora_b = sum(root * raw[p][f"{key}.lora_B.weight"] for p in raw)
        scale = config["lora_alpha"] / config["r"]
        assert torch.allclose(m[key], scale * lora_b @ lora_a, atol=1e-5)


def test_a_merged_adapter_reloads_with_identical_logits(tmp_path, sources):
    import torch
    from peft import PeftModel

    first, second = sources
    merged = merge_adapters(
        _base(), [MergeSource(first, 1.0), MergeSource(second, 1.0)], "ties", tmp_path / "t",
        density=0.5,
    )  # fmt: skip
    once = _logits(PeftModel.from_pretrained(_base(), merged).eval())
    again = _logits(PeftModel.from_pretrained(_base(), merged).eval())
    assert torch.equal(once, again)
    assert not torch.allclose(once, _logits(_base()), atol=1e-4)  # the merge changed the model


def test_bad_merges_are_refused_with_what_to_fix(tmp_path, sources):
    first, second = sources
    with pytest.raises(TrainingError, match="at least two source adapters"):
        merge_adapters(_base(), [MergeSource(first, 1.0)], "cat", tmp_path / "x")
    with pytest.raises(TrainingError, match=r"ties prunes .* give a density in \(0, 1\]"):
        merge_adapters(
            _base(), [MergeSource(first, 1.0), MergeSource(second, 1.0)], "ties", tmp_path / "x"
        )
    with pytest.raises(TrainingError, match="no adapter at .*missing adapter_model.safetensors"):
        merge_adapters(
            _base(), [MergeSource(first, 1.0), MergeSource(tmp_path, 1.0)], "cat", tmp_path / "x"
        )
    assert not (tmp_path / "x").exists()
