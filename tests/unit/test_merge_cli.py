"""`foundry merge` refuses each bad input before any work, naming it and the fix; the composed
persona vector is the weighted sum of the sources'."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.steering.algebra import blend_persona_vectors
from foundry.steering.hooks import SteeringError
from foundry.steering.store import PersonaVector


def _merge(config, *args: str):
    return CliRunner().invoke(
        app, ["merge", *args, "--config", str(config.source)], terminal_width=200
    )


def _fake_adapter(config, slug: str, stage: str = "dpo") -> None:
    folder = config.adapter_dir(slug, stage)
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"not read before the checks pass")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "jonah-okafor", "--from", "priya-castellanos:0.3"], "is not SLUG:WEIGHT"),
        (["--from", "jonah-okafor:much", "--from", "priya-castellanos:0.3"], "is not a number"),
        (["--from", "Jonah:0.5", "--from", "priya-castellanos:0.3"], "--from 'Jonah:0.5'"),
        (["--from", "jonah-okafor:0.7"], "at least two sources"),
        (["--from", "jonah-okafor:0.7", "--from", "jonah-okafor:0.3"], "given twice"),
        (["--from", "jonah-okafr:0.7", "--from", "priya-castellanos:0.3"],
         "unknown persona `jonah-okafr` (did you mean `jonah-okafor`?)"),
        (["--from", "jonah-okafor:0.7", "--from", "priya-castellanos:-0.3", "--method", "ties",
          "--density", "0.5"], "ties cannot subtract"),
        (["--from", "jonah-okafor:0.7", "--from", "priya-castellanos:0.3", "--method", "ties"],
         "set `density`"),
        (["--from", "jonah-okafor:0.7", "--from", "priya-castellanos:0.3", "--method", "mean"],
         "--method 'mean' is not one of cat, linear"),
    ],
)  # fmt: skip
def test_a_bad_blend_is_refused_naming_the_input(config, args, message):
    result = _merge(config, *args, "--as", "jonah-priya")

    assert result.exit_code == 1
    assert message in " ".join(result.output.split()), result.output
    assert not config.persona_dir("jonah-priya").exists()


def test_a_source_without_an_adapter_names_the_command_that_trains_it(config):
    _fake_adapter(config, "jonah-okafor")

    result = _merge(
        config, "--from", "jonah-okafor:0.7", "--from", "priya-castellanos:0.3", "--as", "jp"
    )

    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "priya-castellanos has no dpo adapter" in text
    assert "foundry train --persona priya-castellanos --stage dpo" in text
    assert not config.persona_dir("jp").exists()


def test_the_derived_slug_may_not_replace_a_persona_with_its_own_data(config):
    for slug in ("jonah-okafor", "priya-castellanos"):
        _fake_adapter(config, slug)

    result = _merge(
        config, "--from", "jonah-okafor:0.7", "--from", "priya-castellanos:0.3",
        "--as", "tobias-renn",
    )  # fmt: skip

    assert result.exit_code == 1
    assert "tobias-renn is a persona with data of its own" in " ".join(result.output.split())


def _vector(persona: str, scale: float, base: str = "tiny:x") -> PersonaVector:
    directions = {"mean": np.full((2, 4), scale, dtype=np.float32)}
    meta = {"persona": persona, "base_model": base, "layer": 1, "family": "mean",
            "hidden_size": 4, "alpha": {"steer": float(scale)}}  # fmt: skip
    return PersonaVector(persona, directions, meta)


def test_the_composed_vector_is_the_weighted_sum_with_the_lead_sources_strengths():
    blended = blend_persona_vectors(
        [(_vector("a", 1.0), 0.7), (_vector("b", 10.0), 0.3)], "ab", "a:0.7,b:0.3 cat"
    )

    np.testing.assert_allclose(blended.directions["mean"], np.full((2, 4), 0.7 + 3.0))
    assert blended.meta["persona"] == "ab" and blended.meta["alpha"] == {"steer": 1.0}
    assert blended.meta["derived_from"] == "a:0.7,b:0.3 cat"
    with pytest.raises(SteeringError, match="comes from base"):
        blend_persona_vectors([(_vector("a", 1.0), 1), (_vector("b", 1, "other"), 1)], "ab", "")
