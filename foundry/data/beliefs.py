"""A persona's belief graph: concepts it holds and how they support or oppose each other.

Faultline extracts one graph per persona (`beliefs/<Name>.json`: nodes with the corpus items that
ground them, edges with a polarity and a confidence); the import writes it as
`data/personas/<slug>/beliefs.json`. Public entry points: `BeliefGraph` (reads Faultline's
camelCase and the native snake_case alike), `load_beliefs(path, corpus_ids)` (the graph and the
problems found, each naming the file and the node or edge) and `write_beliefs(path, graph)`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundry.atomic import write_text_atomic
from foundry.data.corpus_formats import decode_utf8
from foundry.data.personas import describe_validation_errors
from foundry.errors import Problem

BELIEFS_FILENAME = "beliefs.json"
NodeType = Literal["factual_claim", "inference", "assumption", "core_value"]


class _Graph(BaseModel):
    # Faultline may add keys to a machine-written file; they are dropped, not errors.
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_strip_whitespace=True)


class BeliefNode(_Graph):
    id: str = Field(min_length=1)
    concept: str = Field(min_length=1, description="The belief in a few words.")
    type: NodeType
    grounding: list[str] = Field(default_factory=list, description="Corpus item ids behind it.")


class BeliefEdge(_Graph):
    """`from_node` supports (polarity 1) or opposes (-1) `to_node`."""

    from_node: str = Field(alias="from", min_length=1)
    to_node: str = Field(alias="to", min_length=1)
    polarity: Literal[1, -1]
    confidence: float = Field(ge=0.0, le=1.0)
    source_chunks: list[str] = Field(
        default_factory=list, alias="sourceChunks", description="Corpus item ids behind it."
    )


class BeliefGraph(_Graph):
    persona_id: str = Field("", alias="personaId", description="The Faultline persona id.")
    persona_name: str = Field("", alias="personaName")
    nodes: list[BeliefNode] = Field(default_factory=list)
    edges: list[BeliefEdge] = Field(default_factory=list)
    extracted_at: str = Field("", alias="extractedAt")

    def node_counts(self) -> dict[str, int]:
        """How many nodes of each type, most common first."""
        return dict(Counter(node.type for node in self.nodes).most_common())


def load_beliefs(
    path: Path, corpus_ids: set[str] | None = None
) -> tuple[BeliefGraph | None, list[Problem]]:
    """Read and check the belief graph at `path`.

    Args:
        path: a Faultline `beliefs/<Name>.json` or a native `beliefs.json`.
        corpus_ids: the persona's corpus item ids; grounding ids outside it are a warning.
            None skips that check.

    Returns:
        The graph (None when the file cannot be read as one) and the problems: errors for
        unreadable JSON, schema errors, repeated node ids and edges naming a missing node.
    """
    text, problem = decode_utf8(path)
    if problem:
        return None, [problem]
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        fix = "fix the JSON syntax"
        return None, [
            Problem("error", path, f"line {exc.lineno}", f"not valid JSON ({exc.msg})", fix)
        ]
    if not isinstance(raw, dict):
        shape = "write {personaId, nodes: [...], edges: [...]}"
        return None, [Problem("error", path, "", "a belief graph must be a JSON object", shape)]
    try:
        graph = BeliefGraph.model_validate(raw)
    except ValidationError as exc:
        return None, describe_validation_errors(exc, path, BeliefGraph)
    problems = _structure_problems(graph, path)
    if corpus_ids is not None:
        problems += _grounding_problems(graph, path, corpus_ids)
    return graph, problems


def write_beliefs(path: Path, graph: BeliefGraph) -> None:
    """Write `graph` atomically in the native snake_case layout."""
    write_text_atomic(path, graph.model_dump_json(indent=2) + "\n")


def _structure_problems(graph: BeliefGraph, path: Path) -> list[Problem]:
    """Repeated node ids, and edges whose ends are not nodes of the graph."""
    problems = []
    first: dict[str, int] = {}
    for index, node in enumerate(graph.nodes):
        if node.id in first:
            problems.append(
                Problem(
                    "error",
                    path,
                    f"nodes[{index}]",
                    f"node id {node.id!r} repeats nodes[{first[node.id]}]",
                    "give each node its own id",
                )
            )
        first.setdefault(node.id, index)
    for index, edge in enumerate(graph.edges):
        for end, node_id in (("from", edge.from_node), ("to", edge.to_node)):
            if node_id not in first:
                problems.append(
                    Problem(
                        "error",
                        path,
                        f"edges[{index}]",
                        f"`{end}` names node {node_id!r}, which is not in `nodes`",
                        "add the node or remove the edge",
                    )
                )
    return problems


def _grounding_problems(graph: BeliefGraph, path: Path, corpus_ids: set[str]) -> list[Problem]:
    """One warning listing the grounding ids that are not the persona's corpus item ids."""
    cited = [i for node in graph.nodes for i in node.grounding]
    cited += [i for edge in graph.edges for i in edge.source_chunks]
    unknown = sorted(set(cited) - corpus_ids)
    if not unknown:
        return []
    return [
        Problem(
            "warning",
            path,
            "",
            f"{len(unknown)} grounding id(s) are not corpus item ids of this persona: "
            + ", ".join(unknown),
            "re-extract the beliefs from the current corpus, or add those items",
        )
    ]
