"""Argument paths through a persona's belief graph: what a debate turn argues along.

A persona imported from Faultline may carry `beliefs.json` (`foundry.data.beliefs`): the concepts it
holds and edges saying which supports or opposes which. Synthesis grounds a turn in it by picking a
short chain of the persona's own edges that bears on the topic, so the turn connects ideas the way
this persona does rather than the way any debater would. Both providers get the same path: the
offline composer words it, Claude is asked to argue along it and cite its node ids.

Public entry points: `load_persona_beliefs(persona_dir)` (the graph, or None without one),
`choose_belief_path(graph, topic, seed)` (the steps), `describe_path(steps)` (the steps as the
request cites them), `path_node_ids(steps)` (what the turn records) and
`strip_node_citations(text, node_ids)` (the turn without Claude's `[n3]` citations, as it is trained
on: a persona never writes node ids).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from foundry.data.beliefs import BELIEFS_FILENAME, BeliefEdge, BeliefGraph, load_beliefs
from foundry.errors import raise_for_errors
from foundry.synthesis.composer_text import content_words

MAX_PATH_STEPS = 3
# Topic overlap counts in whole words; confidence and the seeded jitter only break ties, so
# together they stay below one word.
_CONFIDENCE_WEIGHT = 0.4
_JITTER_WEIGHT = 0.4


class BeliefStep(BaseModel):
    """One edge of the persona's graph as a turn argues it: `from_concept` supports or opposes
    `to_concept`."""

    model_config = ConfigDict(frozen=True)

    from_node: str
    from_concept: str
    polarity: Literal[1, -1]
    to_node: str
    to_concept: str

    @property
    def relation(self) -> str:
        return "supports" if self.polarity == 1 else "opposes"


def load_persona_beliefs(persona_dir: Path) -> BeliefGraph | None:
    """The persona's belief graph (`<persona_dir>/beliefs.json`), or None when it has none.

    Raises:
        DataError: the file exists but is not a valid graph (bad JSON, schema errors, repeated
            node ids, edges naming missing nodes); each problem names the file and the record.
    """
    path = persona_dir / BELIEFS_FILENAME
    if not path.is_file():
        return None
    graph, problems = load_beliefs(path)
    raise_for_errors(problems, f"belief graph {path} (fix it, or delete it to synthesize without)")
    return graph


def choose_belief_path(
    graph: BeliefGraph, topic: str, seed: str, max_steps: int = MAX_PATH_STEPS
) -> list[BeliefStep]:
    """A chain of at most `max_steps` of the graph's edges, anchored on the one nearest `topic`.

    The anchor is the edge whose two concepts share the most content words with the topic
    (its confidence and a jitter seeded by `seed` and the topic break ties); the chain then follows
    the persona's own edges on from the anchor's target, and back into its source, without
    revisiting a node. A topic no edge touches gets no path: arguing unrelated beliefs would be a
    non sequitur, not grounding.

    Returns:
        The steps in argument order (each step's source is the previous step's target when the
        chain continues); empty when no edge shares a content word with the topic.
    """
    nodes = {node.id: node for node in graph.nodes}
    edges = [e for e in graph.edges if e.from_node in nodes and e.to_node in nodes]
    edges = [e for e in edges if e.from_node != e.to_node]
    digest = hashlib.sha256(f"{seed}\x1f{topic}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    jitter = [rng.random() for _ in edges]  # drawn once, so the chain does not shift the draws
    topic_words = _stems(topic)
    concept_words = {node_id: _stems(node.concept) for node_id, node in nodes.items()}

    def overlap(edge: BeliefEdge) -> int:
        return len(topic_words & (concept_words[edge.from_node] | concept_words[edge.to_node]))

    def score(index: int) -> float:
        edge = edges[index]
        tie = _CONFIDENCE_WEIGHT * edge.confidence + _JITTER_WEIGHT * jitter[index]
        return overlap(edge) + tie

    relevant = [i for i, edge in enumerate(edges) if overlap(edge) > 0]
    if not relevant or max_steps < 1:
        return []
    chain = [edges[max(relevant, key=score)]]
    visited = {chain[0].from_node, chain[0].to_node}
    while len(chain) < max_steps:
        onward = [i for i, e in enumerate(edges) if e.from_node == chain[-1].to_node]
        onward = [i for i in onward if edges[i].to_node not in visited]
        back = [i for i, e in enumerate(edges) if e.to_node == chain[0].from_node]
        back = [i for i in back if edges[i].from_node not in visited]
        if onward:
            chain.append(edges[max(onward, key=score)])
            visited.add(chain[-1].to_node)
        elif back:
            chain.insert(0, edges[max(back, key=score)])
            visited.add(chain[0].from_node)
        else:
            break
    concept = {node_id: node.concept for node_id, node in nodes.items()}
    return [_step(edge, concept[edge.from_node], concept[edge.to_node]) for edge in chain]


def describe_path(steps: Sequence[BeliefStep]) -> str:
    """The steps as a request cites them, one a line: "- [n2] <concept> supports [n3] <concept>"."""
    return "\n".join(
        f"- [{s.from_node}] {s.from_concept} {s.relation} [{s.to_node}] {s.to_concept}"
        for s in steps
    )


def path_node_ids(steps: Sequence[BeliefStep]) -> list[str]:
    """The node ids the steps use, each once, in argument order."""
    ids = [node_id for step in steps for node_id in (step.from_node, step.to_node)]
    return list(dict.fromkeys(ids))


def strip_node_citations(text: str, node_ids: Sequence[str]) -> str:
    """`text` without bracketed citations of `node_ids` ("[n3]", "[n2, n4]", "[n2][n3]").

    Brackets naming anything else stay: only ids the turn was asked to cite are markers.
    """
    if not node_ids or "[" not in text:
        return text
    ids = "|".join(re.escape(node_id) for node_id in sorted(node_ids, key=len, reverse=True))
    citation = re.compile(rf"[ \t]*\[\s*(?:{ids})(?:\s*[,;]\s*(?:{ids}))*\s*\]")
    stripped = citation.sub("", text)
    if stripped == text:
        return text
    stripped = re.sub(r"[ \t]+([,.;:!?)])", r"\1", stripped)
    stripped = re.sub(r"\([ \t]*\)", "", stripped)
    return re.sub(r"[ \t]{2,}", " ", stripped).strip()


def _step(edge: BeliefEdge, from_concept: str, to_concept: str) -> BeliefStep:
    return BeliefStep(
        from_node=edge.from_node,
        from_concept=from_concept.rstrip(" ."),
        polarity=edge.polarity,
        to_node=edge.to_node,
        to_concept=to_concept.rstrip(" ."),
    )


def _stems(text: str) -> set[str]:
    """Content words with a plural `s` dropped, so "rates" meets "rate"."""
    return {_singular(word) for word in content_words(text)}


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word
