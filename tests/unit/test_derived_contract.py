"""Derived personas' contracts (issue 22): composed from the sources, validated without a corpus,
and refused with a clear error when a source is missing or the blend cannot be made."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from foundry.data.derived import compose_contract, landing_shares, write_contract
from foundry.data.personas import load_contract, require_contract
from foundry.data.schemas import DerivedFrom, PersonaContract, Position
from foundry.data.validation import validate_personas


def _contract(name: str, positions: list[Position]) -> PersonaContract:
    return PersonaContract(name=name, summary=f"{name} summary.", positions=positions)


A = _contract(
    "Ada Quill",
    [
        Position(
            id="rates", claim="Rates fall by 2027.", counterclaim="They do not.", stance="agree"
        ),
        Position(claim="Gold outperforms equities.", stance="disagree"),
    ],
)
B = _contract(
    "Bo Lind",
    [
        Position(
            id="rates", claim="Rates fall by 2027.", counterclaim="They do not.", stance="disagree"
        ),
        Position(id="gold", claim="  gold OUTPERFORMS equities. ", stance="agree"),
        Position(id="solar", claim="Solar doubles by 2030.", stance="agree"),
    ],
)


def test_the_largest_positive_weight_sets_each_shared_stance():
    blend = compose_contract([(A, 0.7), (B, 0.3)], "", "ada-bo", "ties", 0.5)

    assert blend.trainable is False and blend.is_derived
    assert blend.name == "Blend of Ada Quill and Bo Lind"
    assert blend.summary.startswith("Blend of Ada Quill (0.7) and Bo Lind (0.3), ties")
    stances = {p.claim.strip(): p.stance for p in blend.positions}
    # Matched by id (rates) and by normalised claim text (gold): Ada's stance wins both.
    assert stances == {
        "Rates fall by 2027.": "agree",
        "Gold outperforms equities.": "disagree",
        "Solar doubles by 2030.": "agree",
    }
    assert blend.derived_from.label() == "ada-quill:0.7,bo-lind:0.3 ties d=0.5"

    flipped = compose_contract([(A, 0.3), (B, 0.7)], "", "bo-ada", "linear")
    assert {p.claim.strip().lower(): p.stance for p in flipped.positions}[
        "rates fall by 2027."
    ] == ("disagree")


def test_a_subtracted_source_gives_no_positions_and_the_summary_says_so():
    blend = compose_contract([(B, 1.0), (A, -0.5)], "Bo without Ada", "bo-minus-ada", "cat")

    assert "without Ada Quill's stance" in blend.summary
    assert [p.id for p in blend.positions] == ["rates", "gold", "solar"]
    assert all(p.stance == "agree" or p.id == "rates" for p in blend.positions)
    assert landing_shares(blend.derived_from) == {
        "bo-lind": pytest.approx(1 / 1.5),
        "ada-quill": pytest.approx(-0.5 / 1.5),
    }


@pytest.mark.parametrize(
    ("sources", "method", "density", "message"),
    [
        ([("a", 1.0)], "linear", None, "at least 2"),
        ([("a", 0.5), ("a", 0.5)], "linear", None, "source ids must be unique"),
        ([("a", 1.0), ("b", -0.5)], "ties", 0.5, "ties cannot subtract"),
        ([("a", 1.0), ("b", -0.5)], "dare_ties", 0.5, "dare_ties cannot subtract"),
        ([("a", -1.0), ("b", -0.5)], "linear", None, "every source weight is negative"),
        ([("a", 1.0), ("b", 0.5)], "dare_linear", None, "set `density`"),
        ([("a", 1.0), ("b", 0.0)], "cat", None, "weight of 0"),
    ],
)
def test_blends_that_cannot_be_made_are_refused_with_the_reason(sources, method, density, message):
    with pytest.raises(ValidationError, match=message):
        DerivedFrom(
            method=method,
            density=density,
            sources=[{"slug": s, "weight": w} for s, w in sources],
        )


def test_negative_weights_are_allowed_where_the_method_subtracts():
    for method in ("cat", "linear", "dare_linear", "svd"):
        density = 0.5 if method == "dare_linear" else None
        DerivedFrom(
            method=method,
            density=density,
            sources=[{"slug": "a", "weight": 1}, {"slug": "b", "weight": -0.5}],
        )


def test_a_written_derived_contract_validates_without_a_corpus(config):
    sources = [
        require_contract(config.persona_dir(s)) for s in ("jonah-okafor", "priya-castellanos")
    ]
    blend = compose_contract(
        list(zip(sources, (0.7, 0.3), strict=True)),
        "",
        "jonah-priya",
        "ties",
        0.5,
        versions={"jonah-okafor": "v3"},
    )
    write_contract(config.persona_dir("jonah-priya"), blend)

    loaded, problems = load_contract(config.persona_dir("jonah-priya"))
    assert loaded == blend and not [p for p in problems if p.level == "error"]
    summary = validate_personas(config)
    assert summary.error_count == 0, [str(p) for p in summary.problems]
    assert [p.slug for p in summary.derived] == ["jonah-priya"]
    assert "jonah-priya" not in [p.slug for p in summary.personas]  # no corpus, never trained
    assert loaded.derived_from.sources[0].version == "v3"


def test_a_derived_persona_naming_a_missing_source_is_an_error_that_names_it(config):
    sources = [require_contract(config.persona_dir(s)) for s in ("jonah-okafor", "tobias-renn")]
    blend = compose_contract(list(zip(sources, (0.5, 0.5), strict=True)), "", "jt", "linear")
    write_contract(config.persona_dir("jt"), blend)
    text = (config.persona_dir("jt") / "contract.yaml").read_text()
    (config.persona_dir("jt") / "contract.yaml").write_text(
        text.replace("tobias-renn", "tobias-ren")
    )

    summary = validate_personas(config, ["jt"])

    [error] = [p for p in summary.problems if p.level == "error"]
    assert "source persona 'tobias-ren' does not exist" in str(error)
    assert "contract.yaml" in str(error) and "derived_from" in str(error)


def test_a_derived_persona_cannot_blend_another_derived_persona(config):
    sources = [require_contract(config.persona_dir(s)) for s in ("jonah-okafor", "tobias-renn")]
    write_contract(
        config.persona_dir("jt"),
        compose_contract(list(zip(sources, (0.5, 0.5), strict=True)), "", "jt", "linear"),
    )
    again = compose_contract(
        [(sources[0], 0.5), (require_contract(config.persona_dir("jt")), 0.5)], "", "jjt", "linear"
    )
    write_contract(config.persona_dir("jjt"), again)

    summary = validate_personas(config, ["jjt"])

    assert any("is itself a derived persona" in str(p) for p in summary.problems)
