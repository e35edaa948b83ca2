"""Records passed between stages: persona contracts, corpus items, debate topics, debate turns.

Every record that names a persona checks its slug with `foundry.slugs.check_slug`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from foundry.slugs import check_slug, slugify
from foundry.synthesis.config import Move

Split = Literal["train", "validation", "test"]
ConflictKind = Literal["empirical", "causal", "temporal", "value", "boundary"]
ItemKind = Literal["tweet", "essay", "transcript", "turn", "other"]
# PEFT's adapter combination methods (`foundry.training.merging`); a derived persona names one.
DerivedMethod = Literal["cat", "linear", "ties", "dare_linear", "dare_ties", "svd"]
PRUNING_METHODS = ("ties", "dare_linear", "dare_ties")
# TIES's sign election keeps, per weight, the sign most sources agree on: a negative weight flips
# a source's vote instead of taking its update away, so it is not a subtraction.
NO_SUBTRACTION = ("ties", "dare_ties")


def legacy_split(value: object) -> object:
    """Files written before the three-way split name the validation split `eval`."""
    return "validation" if value == "eval" else value


def check_unique_ids(kind: str, ids: list[str]) -> None:
    """Raise naming every id that appears more than once."""
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"{kind} ids must be unique, repeated: {', '.join(repeated)}")


Slug = Annotated[str, Field(description="Lowercase letters, digits and dashes: `[a-z0-9-]+`.")]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently drop a field."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EvidencePolicy(_Strict):
    acceptable: list[str] = Field(default_factory=list, description="Sources the persona trusts.")
    unacceptable: list[str] = Field(default_factory=list, description="Sources it rejects.")
    weighting: str = Field("", description="How it weighs evidence against evidence.")
    tool_triggers: list[str] = Field(
        default_factory=list, description="Situations in which it would go and look data up."
    )


class AnchorExcerpt(_Strict):
    id: str
    content: str = Field(min_length=1)
    source: str = ""
    date: str = ""


class ReasoningMethod(_Strict):
    """How the persona builds an argument; what makes its reasoning structurally different."""

    name: str = Field(min_length=1)
    description: str = ""
    steps: list[str] = Field(default_factory=list)


class StyleGuide(_Strict):
    markers: list[str] = Field(default_factory=list, description="Habits of voice to keep.")
    avoid: list[str] = Field(default_factory=list, description="Things the persona never does.")


class Position(_Strict):
    """A claim the persona holds or rejects, in a neutral analyst's voice (measures reasoning)."""

    id: str = ""
    claim: str = Field(min_length=1)
    counterclaim: str | None = None
    stance: Literal["agree", "disagree"] = "agree"
    confidence: float = Field(0.7, ge=0.0, le=1.0)
    type: str = ""


class DerivedSource(_Strict):
    """One persona a derived persona is blended from, and its weight (negative: subtracted)."""

    slug: str
    weight: float
    version: str = Field(
        "",
        description="The source's registered model version when known (`v3`), else the sha256 "
        "prefix of the adapter that was merged.",
    )

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        return check_slug(value)


class DerivedFrom(_Strict):
    """How a derived persona was made: its sources' adapters combined by `method`."""

    method: DerivedMethod
    density: float | None = Field(
        None, description="Share of each source's weights TIES/DARE keep, in (0, 1]."
    )
    sources: list[DerivedSource] = Field(min_length=2)
    stage: Literal["sft", "dpo"] = Field(
        "dpo", description="Which adapter of each source is blended into the `dpo` adapter."
    )

    @model_validator(mode="after")
    def _check(self) -> DerivedFrom:
        check_unique_ids("source", [s.slug for s in self.sources])
        if any(s.weight == 0 for s in self.sources):
            raise ValueError("a source weight of 0 contributes nothing; remove that source")
        negative = [s.slug for s in self.sources if s.weight < 0]
        if negative and self.method in NO_SUBTRACTION:
            raise ValueError(
                f"{self.method} cannot subtract ({', '.join(negative)} has a negative weight): its "
                "sign election keeps each weight's majority sign, so a negative weight flips that "
                "source's vote instead of removing its update; use cat (exact), linear, "
                "dare_linear or svd to subtract"
            )
        if all(s.weight < 0 for s in self.sources):
            raise ValueError("every source weight is negative; give at least one positive weight")
        if self.method in PRUNING_METHODS and (self.density is None or not 0 < self.density <= 1):
            raise ValueError(
                f"{self.method} prunes each source to a share of its weights: set `density` in "
                f"(0, 1], e.g. 0.5 (got {self.density})"
            )
        return self

    def label(self) -> str:
        """`jonah-okafor@v3:0.7,priya-castellanos@v2:0.3 ties d=0.5`: the lineage tag's text."""
        parts = [
            f"{s.slug}{'@' + s.version if s.version else ''}:{s.weight:g}" for s in self.sources
        ]
        density = f" d={self.density:g}" if self.density is not None else ""
        return f"{','.join(parts)} {self.method}{density}"


class PersonaContract(_Strict):
    """Who the persona is and how it reasons: the Faultline PersonaContract plus reasoning."""

    name: str = Field(min_length=1)
    slug: str = Field("", description="Folder and model name; derived from `name` when empty.")
    summary: str = ""
    personality: str = ""
    bias: str = ""
    stakes: str = ""
    epistemology: str = ""
    time_horizon: str = ""
    flip_conditions: list[str] = Field(default_factory=list)
    evidence_policy: EvidencePolicy = Field(default_factory=EvidencePolicy)
    anchor_excerpts: list[AnchorExcerpt] = Field(default_factory=list)
    reasoning_method: ReasoningMethod | None = None
    constitution: list[str] = Field(default_factory=list)
    style: StyleGuide = Field(default_factory=StyleGuide)
    positions: list[Position] = Field(default_factory=list)
    trainable: bool = Field(True, description="False when the persona has no corpus to train on.")
    source: Literal["native", "faultline"] = "native"
    source_id: str = Field("", description="The id the persona had where it came from.")
    version: str = ""
    handle: str = ""
    derived_from: DerivedFrom | None = Field(
        None,
        description="Set on a persona blended from others' adapters (`foundry merge`): it has no "
        "corpus, is never trained, and is re-merged when a source's adapter changes.",
    )

    @property
    def is_derived(self) -> bool:
        return self.derived_from is not None

    @model_validator(mode="after")
    def _fill_slug(self) -> PersonaContract:
        self.slug = check_slug(self.slug) if self.slug else slugify(self.name)
        if self.derived_from and self.slug in {s.slug for s in self.derived_from.sources}:
            raise ValueError(f"derived persona {self.slug!r} names itself as a source")
        return self

    @field_validator("positions")
    @classmethod
    def _unique_position_ids(cls, positions: list[Position]) -> list[Position]:
        check_unique_ids("position", [p.id for p in positions if p.id])
        return positions


class CorpusItem(_Strict):
    """One thing the persona wrote (or a synthetic turn), after normalisation."""

    id: str = Field(min_length=1)
    persona: str
    text: str = Field(min_length=1)
    source: str = ""
    date: str = ""
    platform: str = ""
    kind: ItemKind = "other"
    document: str = Field(
        "", description="The document the item is part of (an essay, a thread); empty: itself."
    )
    split: Split | None = None

    @field_validator("persona")
    @classmethod
    def _persona_is_slug(cls, value: str) -> str:
        return check_slug(value)


class DebateTopic(_Strict):
    """A debate prompt used for synthesis and, when held out, for evaluation."""

    id: str
    prompt: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    group: str = Field(
        "",
        description="Topics that phrase one question share a group, so a held-out question "
        "has no paraphrase in training; empty: the topic is its own group.",
    )

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, value: str) -> str:
        return check_slug(value)

    @field_validator("group")
    @classmethod
    def _group_is_slug(cls, value: str) -> str:
        return check_slug(value) if value else value

    @property
    def group_key(self) -> str:
        return self.group or self.id


class TopicFile(_Strict):
    topics: list[DebateTopic] = Field(min_length=1)

    @field_validator("topics")
    @classmethod
    def _unique_ids(cls, topics: list[DebateTopic]) -> list[DebateTopic]:
        check_unique_ids("topic", [t.id for t in topics])
        return topics


class PreferencePair(_Strict):
    """A DPO example: for `prompt`, the persona would say `chosen`, not `rejected`."""

    persona: str
    prompt: str = Field(min_length=1)
    chosen: str = Field(min_length=1)
    rejected: str = Field(min_length=1)
    strategy: str = Field(description="How the rejected answer was made (e.g. `cross_persona`).")
    provenance: dict[str, str] = Field(default_factory=dict)
    split: Split = "train"

    @field_validator("persona")
    @classmethod
    def _persona_is_slug(cls, value: str) -> str:
        return check_slug(value)

    @field_validator("split", mode="before")
    @classmethod
    def _legacy_split(cls, value: object) -> object:
        return legacy_split(value)


class DebateTurn(_Strict):
    """A generated debate turn with its provenance: who made it, from what, and at what cost."""

    key: str = Field(min_length=1, description="Cache key: provider, model, prompts, params.")
    persona: str
    topic_id: str
    prompt: str = Field(min_length=1, description="The debate prompt (the user turn in training).")
    move: Move
    text: str = Field(min_length=1)
    split: Split = Field(
        "train", description="`validation` for turns on dev topics (never trained on)."
    )
    provider: str
    model: str
    template: str = Field(description="Prompt template name and version.")
    prompt_hash: str = Field(description="sha256 of the system and user prompts sent.")
    passage_ids: list[str] = Field(default_factory=list, description="Corpus items retrieved.")
    opponent: str = Field("", description="The persona whose turn a `challenge` answers.")
    belief_nodes: list[str] = Field(
        default_factory=list, description="Belief-graph node ids of the path the turn argues."
    )
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    created_at: str = ""
    draft: str = Field("", description="The text before the constitution pass revised it.")
    critique: str = Field("", description="The constitution pass's critique of the draft.")

    @field_validator("persona")
    @classmethod
    def _persona_is_slug(cls, value: str) -> str:
        return check_slug(value)

    @field_validator("split", mode="before")
    @classmethod
    def _legacy_split(cls, value: object) -> object:
        return legacy_split(value)


class Conflict(_Strict):
    """Two personas who disagree, and the question whose answer would settle it (test data only).

    Written in a neutral analyst's voice: each assumption is what that persona takes for granted,
    stated so that the other would deny it.
    """

    id: str
    persona_a: str
    assumption_a: str = Field(min_length=1)
    persona_b: str
    assumption_b: str = Field(min_length=1)
    question: str = Field(min_length=1, description="A debate question that would settle it.")
    kind: ConflictKind

    @field_validator("id", "persona_a", "persona_b")
    @classmethod
    def _slugs(cls, value: str) -> str:
        return check_slug(value)

    @model_validator(mode="after")
    def _two_personas(self) -> Conflict:
        if self.persona_a == self.persona_b:
            raise ValueError(f"persona_a and persona_b are both {self.persona_a!r}; name two")
        return self


class ConflictFile(_Strict):
    conflicts: list[Conflict] = Field(default_factory=list)

    @field_validator("conflicts")
    @classmethod
    def _unique_ids(cls, conflicts: list[Conflict]) -> list[Conflict]:
        check_unique_ids("conflict", [c.id for c in conflicts])
        return conflicts
