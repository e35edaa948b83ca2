"""Cache keys of the retrain flow: each changes with what its step depends on, and only then."""

from __future__ import annotations

from pathlib import Path

from foundry.config import load_config
from foundry.orchestration.run_keys import base_key, code_version, evaluation_key, persona_keys


def _config(tmp_path: Path, text: str = ""):
    (tmp_path / "foundry.yaml").write_text(text)
    return load_config(tmp_path / "foundry.yaml", environ={})


def _keys(config, content: str = "c1", **overrides):
    options = {"topics_hash": "t1", "provider": "offline", "model": "", "base": "b1"}
    return persona_keys(config, content, **(options | overrides))


def test_same_inputs_give_the_same_keys(tmp_path):
    config = _config(tmp_path)

    assert _keys(config) == _keys(config)
    assert code_version() == code_version() and len(code_version()) == 20


def test_the_persona_data_changes_every_step(tmp_path):
    config = _config(tmp_path)
    before, after = _keys(config), _keys(config, content="c2")

    assert before.vectors == ""  # no vectors step while `steering.enabled` is off
    fields = [f for f in type(before).model_fields if f != "vectors"]
    assert all(getattr(before, f) != getattr(after, f) for f in fields)


def test_steering_settings_change_vectors_and_registration_only(tmp_path):
    enabled = _keys(_config(tmp_path, "steering: {enabled: true}\n"))
    tuned = _keys(_config(tmp_path, "steering: {enabled: true, alphas: [0, 3]}\n"))
    edited = _keys(_config(tmp_path, "steering: {enabled: true}\n"), content="c2")

    assert enabled.vectors and enabled.train == tuned.train
    assert enabled.vectors != tuned.vectors and enabled.registration != tuned.registration
    assert enabled.model != tuned.model  # the evaluation sees the new vector
    assert edited.vectors != enabled.vectors


def test_training_settings_change_training_and_registration_only(tmp_path):
    before = _keys(_config(tmp_path))
    after = _keys(_config(tmp_path, "training: {sft: {max_steps: 7}}\n"))

    assert (before.synth, before.pairs) == (after.synth, after.pairs)
    assert before.train != after.train and before.registration != after.registration


def test_registry_settings_change_registration_only(tmp_path):
    before = _keys(_config(tmp_path))
    after = _keys(_config(tmp_path, "registry: {experiment: other}\n"))
    elsewhere = _keys(_config(tmp_path), tracking="http://mlflow.example:5000")

    assert (before.synth, before.pairs, before.train) == (after.synth, after.pairs, after.train)
    assert before.registration != after.registration != elsewhere.registration


def test_topics_provider_and_base_reach_the_steps_that_use_them(tmp_path):
    config = _config(tmp_path)
    base = _keys(config)

    assert _keys(config, topics_hash="t2").synth != base.synth
    assert _keys(config, provider="anthropic").synth != base.synth
    other_base = _keys(config, base="b2")
    assert other_base.synth == base.synth and other_base.pairs != base.pairs


def test_evaluation_depends_on_every_evaluated_adapter(tmp_path):
    config = _config(tmp_path)
    keys = {"a": "k1", "b": "k2"}

    assert evaluation_key(config, keys, "b1") == evaluation_key(
        config, dict(reversed(keys.items())), "b1"
    )
    assert evaluation_key(config, keys, "b1") != evaluation_key(config, {**keys, "b": "k3"}, "b1")
    assert evaluation_key(config, keys, "b1") != evaluation_key(config, {"a": "k1"}, "b1")
    other = _config(tmp_path, "evaluation: {max_new_tokens: 40}\n")
    assert evaluation_key(config, keys, "b1") != evaluation_key(other, keys, "b1")


def test_the_base_key_follows_the_pin_and_the_base_settings(tmp_path):
    config = _config(tmp_path)

    assert base_key(config, "p1") != base_key(config, "p2")
    bigger = _config(tmp_path, "base_model: {tiny: {hidden_size: 256}}\n")
    assert base_key(config, "p1") != base_key(bigger, "p1")
