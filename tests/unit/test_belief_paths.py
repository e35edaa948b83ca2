"""Belief paths: synthesis argues along the persona's own belief-graph edges, cited by node."""

from __future__ import annotations

import json
import shutil

import pytest

from foundry.config import load_config
from foundry.data.beliefs import BeliefGraph
from foundry.data.retrieval import PassageIndex
from foundry.data.schemas import DebateTopic, DebateTurn
from foundry.data.textnorm import longest_copied_run, words
from foundry.data.validation import validate_personas
from foundry.errors import DataError
from foundry.synthesis.belief_paths import (
    choose_belief_path,
    describe_path,
    load_persona_beliefs,
    path_node_ids,
    strip_node_citations,
)
from foundry.synthesis.composer_moves import belief_sentences
from foundry.synthesis.generation_cache import GenerationCache
from foundry.synthesis.jobs import GenerationResult, Usage
from foundry.synthesis.offline_composer import compose_turn
from foundry.synthesis.plan import PASSAGE_CHARS, TARGET_WORDS, Slot, job_key, turn_request
from foundry.synthesis.prompt_templates import load_template
from foundry.synthesis.providers import OFFLINE_MODEL
from foundry.synthesis.turn_requests import collect_turns, turn_row
from tests.conftest import SAMPLE_DIR, make_project

SLUG = "tobias-renn"
CAPEX = DebateTopic(
    id="capex", prompt="Will the current wave of AI data-center spending earn back its cost?"
)
INFLATION = DebateTopic(
    id="inflation", prompt="Will inflation in advanced economies average above 3% a year?"
)
UNRELATED = DebateTopic(id="cars", prompt="Should cities ban cars from their old streets?")
# A small fictional graph: a capex chain n1 -> n2 -> n3 -x n4, an inflation pair n7 -> n5 -x n6,
# and n8, a node no edge touches.
GRAPH = {
    "personaId": "Tobias Renn",
    "nodes": [
        {"id": "n1", "concept": "hyperscalers are paid for market share", "type": "assumption"},
        {"id": "n2", "concept": "data-center spending keeps rising", "type": "inference"},
        {"id": "n3", "concept": "inference prices fall toward marginal cost", "type": "inference"},
        {"id": "n4", "concept": "the buildout earns its money back", "type": "inference"},
        {"id": "n5", "concept": "central banks keep their targets credible", "type": "assumption"},
        {"id": "n6", "concept": "inflation stays high for a decade", "type": "inference"},
        {"id": "n7", "concept": "costly signals beat statements", "type": "core_value"},
        {"id": "n8", "concept": "tulip auctions clear at dawn", "type": "factual_claim"},
    ],
    "edges": [
        {"from": "n1", "to": "n2", "polarity": 1, "confidence": 0.8},
        {"from": "n2", "to": "n3", "polarity": 1, "confidence": 0.7},
        {"from": "n3", "to": "n4", "polarity": -1, "confidence": 0.75},
        {"from": "n5", "to": "n6", "polarity": -1, "confidence": 0.6},
        {"from": "n7", "to": "n5", "polarity": 1, "confidence": 0.5},
    ],
}


@pytest.fixture(scope="module")
def graph() -> BeliefGraph:
    return BeliefGraph.model_validate(GRAPH)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """(config, contract, train passage index) of the sample's tobias-renn, with no graph."""
    root = make_project(tmp_path_factory.mktemp("beliefs") / "project")
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    persona = validate_personas(config, [SLUG]).personas[0]
    train = [item for item in persona.items if item.split == "train"]
    return config, persona.contract, PassageIndex(train)


def _request(project, beliefs, topic=CAPEX, move="claim", template=None):
    config, contract, index = project
    return turn_request(
        slot=Slot(topic, move, "train"),
        contract=contract,
        passages=index.top(topic.prompt, config.synthesis.passages),
        template=template or load_template("debate-turn-v1"),
        config=config.synthesis,
        provider="offline",
        model=OFFLINE_MODEL,
        beliefs=beliefs,
    )


def _offline_text(request) -> str:
    """What the offline provider composes for `request` (the real provider, so the path must
    reach the composer through the job)."""
    from foundry.synthesis.jobs import Budget
    from foundry.synthesis.providers import OfflineProvider

    texts = []
    OfflineProvider().generate(
        [request.job], lambda _job, result: texts.append(result.text), Budget(1.0)
    )
    assert len(texts) == 1
    return texts[0]


def _result(request, text: str) -> GenerationResult:
    return GenerationResult(
        request.job.key, text, "offline", OFFLINE_MODEL, Usage(), 0, 0, "offline"
    )


def test_the_path_follows_real_edges_and_chains_from_the_edge_nearest_the_topic(graph):
    steps = choose_belief_path(graph, CAPEX.prompt, seed="s")

    edges = {(e.from_node, e.to_node): e.polarity for e in graph.edges}
    assert [(s.from_node, s.to_node) for s in steps] == [("n1", "n2"), ("n2", "n3"), ("n3", "n4")]
    assert all(edges[s.from_node, s.to_node] == s.polarity for s in steps)
    assert steps[0].from_concept == "hyperscalers are paid for market share"
    assert path_node_ids(steps) == ["n1", "n2", "n3", "n4"]


def test_the_path_goes_back_into_the_anchor_when_it_cannot_go_on(graph):
    steps = choose_belief_path(graph, INFLATION.prompt, seed="s")

    assert [(s.from_node, s.polarity, s.to_node) for s in steps] == [
        ("n7", 1, "n5"),
        ("n5", -1, "n6"),
    ]


def test_a_topic_no_edge_touches_gets_no_path(graph):
    assert choose_belief_path(graph, UNRELATED.prompt, seed="s") == []


def test_the_seed_makes_the_path_reproducible_and_breaks_ties(graph):
    twins = BeliefGraph.model_validate(
        {
            "nodes": [
                {"id": "a", "concept": "reactor orders", "type": "factual_claim"},
                {"id": "b", "concept": "firm power", "type": "inference"},
                {"id": "c", "concept": "reactor delays", "type": "factual_claim"},
                {"id": "d", "concept": "gas turbines", "type": "inference"},
            ],
            "edges": [
                {"from": "a", "to": "b", "polarity": 1, "confidence": 0.5},
                {"from": "c", "to": "d", "polarity": -1, "confidence": 0.5},
            ],
        }
    )
    topic = "Which reactor will a campus choose?"

    anchors = {choose_belief_path(twins, topic, seed=str(i))[0].from_node for i in range(20)}
    assert anchors == {"a", "c"}
    for seed in ("1", "2", "3"):
        assert choose_belief_path(twins, topic, seed) == choose_belief_path(twins, topic, seed)
    assert choose_belief_path(graph, CAPEX.prompt, "x") == choose_belief_path(
        graph, CAPEX.prompt, "x"
    )


def test_polarity_is_worded_as_support_or_opposition(graph):
    steps = choose_belief_path(graph, CAPEX.prompt, seed="s")

    assert describe_path(steps).splitlines() == [
        "- [n1] hyperscalers are paid for market share supports [n2] data-center spending keeps "
        "rising",
        "- [n2] data-center spending keeps rising supports [n3] inference prices fall toward "
        "marginal cost",
        "- [n3] inference prices fall toward marginal cost opposes [n4] the buildout earns its "
        "money back",
    ]
    assert belief_sentences(steps) == [
        "Because hyperscalers are paid for market share, data-center spending keeps rising.",
        "And because data-center spending keeps rising, inference prices fall toward marginal "
        "cost.",
        "Inference prices fall toward marginal cost, and that cuts against the idea that the "
        "buildout earns its money back.",
    ]


def test_an_offline_turn_argues_along_the_path_and_records_its_nodes(project, graph):
    request = _request(project, graph)
    text = _offline_text(request)

    assert "Because hyperscalers are paid for market share, data-center spending" in text
    assert "marginal cost, and that cuts against the idea that the buildout earns" in text
    assert request.belief_nodes == ("n1", "n2", "n3", "n4")
    assert "[n3] inference prices fall toward marginal cost opposes [n4]" in request.job.user
    assert 60 <= len(words(text)) <= 200
    passages = [item.text for item in request.job.meta["passages"]]
    assert longest_copied_run(text, passages) <= 15

    row = turn_row(request, _result(request, text))
    turn = DebateTurn.model_validate({k: v for k, v in row.items() if k in DebateTurn.model_fields})
    assert turn.belief_nodes == ["n1", "n2", "n3", "n4"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Spending rises [n2], so prices fall [n3].", "Spending rises, so prices fall."),
        ("It cuts both ways [n2, n3]; [n4][n1] settles it.", "It cuts both ways; settles it."),
        ("One thing ( [n2] ) matters.", "One thing matters."),
        # Only the ids the turn was asked to cite are markers: n12 is not n1, [x1] is not a node.
        ("Tier [n12] and [x1] stay, [n1] goes.", "Tier [n12] and [x1] stay, goes."),
        ("No citations here.", "No citations here."),
    ],
)
def test_citations_of_the_path_nodes_are_taken_out_and_nothing_else(text, expected):
    assert strip_node_citations(text, ["n1", "n2", "n3", "n4"]) == expected


def test_a_cited_turn_is_read_back_without_its_citations_and_the_cache_keeps_them(
    project, graph, tmp_path
):
    request = _request(project, graph)
    cited = "Hyperscalers are paid for share [n1], so spending keeps rising [n2] until it does not."
    cache = GenerationCache(tmp_path / "generations.jsonl")
    cache.append(turn_row(request, _result(request, cited)))
    turns: dict[str, list[DebateTurn]] = {SLUG: []}

    collect_turns([request], {SLUG: cache}, turns)

    (turn,) = turns[SLUG]
    uncited = "Hyperscalers are paid for share, so spending keeps rising until it does not."
    assert turn.text == uncited
    assert turn.belief_nodes == ["n1", "n2", "n3", "n4"]
    assert GenerationCache(tmp_path / "generations.jsonl").get(request.job.key)["text"] == cited


def test_without_a_graph_the_request_and_turn_are_what_they_were(project, graph):
    config, contract, index = project
    assert load_persona_beliefs(config.persona_dir(SLUG)) is None
    template = load_template("debate-turn-v1")
    plain = _request(project, None)

    # The request as it was built before belief graphs: the template without the `{beliefs}` slot.
    passages = index.top(CAPEX.prompt, config.synthesis.passages)
    user = template.user.replace("{beliefs}", "").format(
        prompt=CAPEX.prompt,
        move_instruction=template.moves.claim,
        passages="\n".join(f"- {p.text[:PASSAGE_CHARS]}" for p in passages),
        min_words=TARGET_WORDS[0],
        max_words=TARGET_WORDS[1],
    )
    assert plain.job.user == user
    key = job_key("offline", OFFLINE_MODEL, template.name, plain.job.system, user, config.synthesis)
    assert plain.job.key == key and plain.belief_nodes == ()
    assert "belief_nodes" not in turn_row(plain, _result(plain, "x"))
    # The offline text is the composition without any belief argument.
    meta = plain.job.meta
    before = compose_turn(contract, CAPEX.prompt, "claim", meta["passages"], None, seed=key)
    assert _offline_text(plain) == before
    assert _offline_text(_request(project, graph)) != before


def test_the_cache_key_changes_with_the_graph_where_the_turn_uses_it(project, tmp_path):
    folder = tmp_path / SLUG
    folder.mkdir()
    path = folder / "beliefs.json"

    def key_with(raw: dict) -> str:
        path.write_text(json.dumps(raw))
        return _request(project, load_persona_beliefs(folder)).job.key

    first = key_with(GRAPH)
    assert first != _request(project, None).job.key
    edited = json.loads(json.dumps(GRAPH))
    edited["nodes"][2]["concept"] = "inference prices collapse"  # n3, on the capex path
    assert key_with(edited) not in {first, _request(project, None).job.key}
    flipped = json.loads(json.dumps(GRAPH))
    flipped["edges"][2]["polarity"] = 1  # n3 -> n4 now supports
    assert key_with(flipped) != first
    # The turn's inputs are the path: an edit off it shapes no answer, so nothing is paid again.
    off_path = json.loads(json.dumps(GRAPH))
    off_path["nodes"][7]["concept"] = "tulip auctions clear at noon"
    assert key_with(off_path) == first


def test_a_broken_graph_fails_with_the_file_and_the_record(tmp_path):
    broken = json.loads(json.dumps(GRAPH))
    broken["edges"].append({"from": "n1", "to": "n99", "polarity": 1, "confidence": 0.5})
    (tmp_path / "beliefs.json").write_text(json.dumps(broken))

    with pytest.raises(DataError, match=r"beliefs\.json, edges\[5\].*'n99'"):
        load_persona_beliefs(tmp_path)


def test_a_template_without_a_beliefs_block_leaves_the_graph_out(project, graph):
    template = load_template("debate-turn-v1").model_copy(update={"beliefs": ""})

    request = _request(project, graph, template=template)

    assert request.belief_nodes == () and "Argue along" not in request.job.user
    assert request.job.key == _request(project, None, template=template).job.key
