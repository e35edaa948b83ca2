"""Position rows (`foundry.data.stance`): what they teach, what they keep out, and how training
and evaluation use them."""

from __future__ import annotations

from foundry.data.framing import TopicSplit, debate_prompt
from foundry.data.schemas import DebateTopic, PersonaContract, Position, PreferencePair
from foundry.data.stance import position_rows, position_topics, trained_positions
from foundry.training.datasets import dpo_examples

CAPEX = Position(
    id="capex",
    claim="AI data-center spending will pay for itself within a decade.",
    counterclaim="AI data-center spending will not pay for itself within a decade.",
    stance="disagree",
    confidence=0.8,
)
BITCOIN = Position(
    id="bitcoin",
    claim="A central bank will hold bitcoin reserves by 2035.",
    counterclaim="No central bank will hold bitcoin reserves by 2035.",
    stance="agree",
)
TARIFFS = Position(
    id="tariffs",
    claim="Tariffs bring factory jobs back home.",
    counterclaim="Tariffs do not bring factory jobs back home.",
)
NO_COUNTER = Position(id="vague", claim="Spending on data centers matters.")


def topic(id_: str, group: str, prompt: str) -> DebateTopic:
    return DebateTopic(id=id_, group=group, prompt=prompt)


SPLIT = TopicSplit(
    train=[
        topic("capex-1", "capex", "Will AI data-center spending pay for itself?"),
        topic("capex-2", "capex", "Is the data-center spending boom worth its cost?"),
    ],
    dev=[topic("btc-1", "btc", "Will central banks hold bitcoin reserves?")],
    heldout=[topic("tariff-1", "tariff", "Do tariffs bring factory jobs home?")],
)


def contract() -> PersonaContract:
    return PersonaContract(
        name="Test Persona",
        flip_conditions=[
            "Bitcoin custody rules for central banks are rewritten.",
            "Data-center spending earns its cost back through cloud revenue.",
        ],
        positions=[CAPEX, BITCOIN, TARIFFS, NO_COUNTER],
    )


def test_positions_are_placed_by_their_nearest_topic_and_its_group() -> None:
    found = position_topics(contract(), SPLIT)
    assert {k: role for k, (role, _) in found.items()} == {
        "capex": "train",
        "bitcoin": "dev",
        "tariffs": "heldout",
    }  # a position without a counterclaim has no side to teach
    assert [t.id for t in found["capex"][1]] == ["capex-1", "capex-2"]
    assert trained_positions(contract(), SPLIT) == {"capex", "bitcoin"}


def test_rows_hold_the_persona_side_and_reject_the_other_in_the_same_words() -> None:
    rows = position_rows(contract(), SPLIT)
    assert [(r.position, r.split) for r in rows] == [
        ("capex", "train"),
        ("capex", "train"),
        ("bitcoin", "validation"),
    ]
    assert [r.prompt for r in rows[:2]] == [debate_prompt(t) for t in SPLIT.train]
    capex = rows[0]
    # stance disagree: the persona holds the counterclaim; the rejected answer holds the claim
    assert CAPEX.counterclaim in capex.chosen and CAPEX.claim not in capex.chosen.split(". ")[0]
    assert capex.rejected.startswith(CAPEX.claim) or CAPEX.claim in capex.rejected
    assert capex.chosen.replace(CAPEX.counterclaim, "").replace(CAPEX.claim, "") == (
        capex.rejected.replace(CAPEX.counterclaim, "").replace(CAPEX.claim, "")
    )  # only the sides differ
    assert "cloud revenue" in capex.chosen  # the flip condition closest to the position
    assert "custody" in rows[2].chosen


def test_no_row_comes_from_a_held_out_topic_or_prompt() -> None:
    rows = position_rows(contract(), SPLIT)
    heldout_prompts = {debate_prompt(t) for t in SPLIT.heldout}
    assert not any(r.prompt in heldout_prompts for r in rows)
    assert not any("Tariffs" in r.chosen or "tariffs" in r.chosen for r in rows)


def test_position_pairs_follow_the_synthetic_ones_in_their_split() -> None:
    pair = PreferencePair(
        persona="test-persona",
        prompt="Debate prompt: anything",
        chosen="mine",
        rejected="theirs",
        strategy="generic",
        split="train",
    )
    rows = position_rows(contract(), SPLIT)
    train, validation = dpo_examples("test-persona", [pair], rows)
    assert [r["chosen"][0]["content"] for r in train] == ["mine"] + [r.chosen for r in rows[:2]]
    assert [r["rejected"][0]["content"] for r in validation] == [rows[2].rejected]


def test_evaluation_judges_stance_only_on_positions_training_never_stated(config) -> None:
    from foundry.evaluation.answers import EvalSetup

    setup = EvalSetup(
        config=config,
        contracts={"test-persona": contract()},
        prompts=[],
        train_texts={},
        trained_positions={"test-persona": trained_positions(contract(), SPLIT)},
    )
    assert [key for key, _ in setup.judged_positions("test-persona")] == ["tariffs", "vague"]
    setup.trained_positions = {}  # `training.position_rows: false`: every position is judged
    assert len(setup.judged_positions("test-persona")) == 4


def test_the_copy_guard_indexes_every_text_sft_taught(config) -> None:
    import json

    from foundry.data.validation import validate_personas
    from foundry.evaluation.answers import EvalSetup

    slug = "tobias-renn"
    turns = config.data_dir / "synthetic" / slug / "turns.jsonl"
    turns.parent.mkdir(parents=True)
    turn = {"prompt": "Debate prompt: x", "text": "A synthetic turn the adapter learned."}
    turns.write_text(json.dumps(turn) + "\n")
    summary = validate_personas(config)
    setup = EvalSetup.build(config, summary)
    persona = next(p for p in summary.personas if p.slug == slug)
    texts = setup.train_texts[slug]
    assert {i.text for i in persona.items if i.split == "train"} <= set(texts)
    assert not {i.text for i in persona.items if i.split == "test"} & set(texts)
    assert turn["text"] in texts
    rows = position_rows(persona.contract, summary.topic_split)
    assert rows and {r.chosen for r in rows} <= set(texts)
