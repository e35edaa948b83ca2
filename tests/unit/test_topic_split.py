"""Topics split by group into train, dev and held-out, so no paraphrase crosses a boundary."""

from __future__ import annotations

from foundry.data.framing import move_prompt, split_topics
from foundry.data.schemas import DebateTopic


def _topics(groups: int, per_group: int = 3) -> list[DebateTopic]:
    return [
        DebateTopic(id=f"g{g}-t{t}", prompt=f"Question {g} phrased way {t}?", group=f"g{g}")
        for g in range(groups)
        for t in range(per_group)
    ]


def test_a_group_never_spans_two_roles():
    split = split_topics(_topics(20), heldout_fraction=0.25, dev_fraction=0.1)

    roles = {}
    for role in ("train", "dev", "heldout"):
        for topic in getattr(split, role):
            assert roles.setdefault(topic.group, role) == role
    assert list(roles.values()).count("heldout") == 5  # 25% of 20 groups
    assert len(split.heldout) == 15 and len(split.dev) == 6 and len(split.train) == 39


def test_the_split_is_stable_and_adding_a_group_moves_no_other():
    topics = _topics(20)
    first = split_topics(topics, 0.25, 0.1)
    assert split_topics(list(reversed(topics)), 0.25, 0.1).role("g3-t0") == first.role("g3-t0")

    grown = split_topics(topics + _topics(21)[-3:], 0.25, 0.1)
    moved = [t.id for t in topics if grown.role(t.id) != first.role(t.id)]
    # One more group can only shift the boundaries, by at most one group each.
    assert len(moved) <= 2 * 3


def test_topics_without_a_group_are_their_own_group():
    topics = [DebateTopic(id=f"t{i}", prompt=f"Question {i}?") for i in range(12)]
    split = split_topics(topics, 0.25, 0.1)
    assert (len(split.heldout), len(split.dev), len(split.train)) == (3, 1, 8)


def test_fewer_than_three_groups_are_all_train():
    split = split_topics(_topics(2), 0.25, 0.1)
    assert not split.heldout and not split.dev and len(split.train) == 6
    assert split.framing == split.train


def test_sample_topics_keep_paraphrases_together(config):
    from foundry.data.validation import validate_personas

    split = validate_personas(config).topic_split
    assert split.heldout and split.dev and split.train
    for role in ("train", "dev"):
        groups = {t.group_key for t in getattr(split, role)}
        assert not groups & {t.group_key for t in split.heldout}


def test_move_prompt_adds_a_cue_and_quotes_at_most_thirty_words():
    topic = DebateTopic(id="x", prompt="Will it rain?")
    assert move_prompt(topic, "claim") == "Debate prompt: Will it rain?"
    assert "would change your mind" in move_prompt(topic, "concession")
    quote = " ".join(f"w{i}" for i in range(50))
    challenge = move_prompt(topic, "challenge", quote)
    assert "w29 ..." in challenge and "w30" not in challenge
    assert "conventional view" in move_prompt(topic, "challenge")


def test_a_topic_asking_a_conflict_question_is_kept_from_training_with_its_group():
    topics = _topics(20)
    plain = split_topics(topics, 0.25, 0.1)
    trained = plain.train[0]
    asked = [f"  {trained.prompt.upper()} "]  # case and spacing do not make another question

    split = split_topics(topics, 0.25, 0.1, asked)

    assert split.conflict_topics == [t for t in topics if t.group == trained.group]
    assert all(t.group != trained.group for t in split.framing + split.heldout)
    assert split.role(trained.id) == "heldout"  # nothing is trained on it
    # The other groups are split among themselves: 25 % of 19 held out for evaluation.
    assert len({t.group for t in split.heldout}) == 5 and split.dev and split.train


def test_a_conflict_question_in_the_topics_file_is_never_synthesized_and_asked_once(config):
    """An imported deck's topics file holds its conflicts' questions: they are evaluation's."""
    import yaml

    from foundry.data.validation import validate_personas
    from foundry.evaluation.answers import EvalSetup

    conflicts = yaml.safe_load(config.conflicts_file.read_text())["conflicts"]
    question = conflicts[0]["question"]
    raw = yaml.safe_load(config.topics_file.read_text())
    raw["topics"].append({"id": "asked-twice", "prompt": question, "group": "own-group"})
    config.topics_file.write_text(yaml.safe_dump(raw))

    summary = validate_personas(config)

    assert [t.id for t in summary.topic_split.conflict_topics] == ["asked-twice"]
    assert question not in {t.prompt for t in summary.topic_split.framing}
    assert question not in {t.prompt for t in summary.topic_split.heldout}
    prompts = [t.prompt for t in EvalSetup.build(config, summary).prompts]
    assert prompts.count(question) == 1
