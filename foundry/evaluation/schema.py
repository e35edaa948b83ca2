"""The evaluation report's schema: what `metrics.json` holds (schema version 1).

Every number a reader sees in the markdown report, the plots, MLflow and the CLI table comes from
one `EvalReport`. Fields only ever get added; a change of meaning bumps `SCHEMA_VERSION`.

Conventions: matrices are lists of rows; `labels` name the rows and columns in order; a metric
that could not be computed is `null` with the reason in `EvalReport.notes`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
CONFLICT_PREFIX = "conflict-"  # held-out prompt ids of conflict questions: `conflict-<id>`


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attribution(_Record):
    """Who-wrote-this on a variant's answers: true persona against predicted persona."""

    accuracy: float
    macro_f1: float
    labels: list[str] = Field(description="Persona slugs, the order of the confusion matrix.")
    confusion: list[list[int]] = Field(description="Rows: true persona; columns: predicted.")
    accuracy_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval of the accuracy, resampling prompts."
    )
    recall_intervals: dict[str, list[float]] = Field(
        default_factory=dict,
        description="Per persona: 95 % bootstrap interval of its recall, resampling its prompts.",
    )


class Fluency(_Record):
    nll_under_base: float | None = Field(
        description="Mean token negative log-likelihood of the answers under the base model."
    )
    distinct_1: float = Field(description="Unique words / words over all answers (1 = no repeats).")
    distinct_2: float = Field(description="Unique word bigrams / bigrams over all answers.")
    mean_words: float = Field(description="Mean answer length in words.")
    nll_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval of `nll_under_base`, resampling prompts."
    )


class Homogeneity(_Record):
    """How alike the personas' answers to one prompt are, averaged over prompts."""

    mean_pairwise_cosine: float = Field(description="1: every persona said the same thing.")
    effective_rank: float = Field(
        description="exp(entropy of the singular values) of the answers' embeddings: from 1 "
        "(one direction) to the number of personas (all different)."
    )
    backend: str = Field(description="`minilm` (all-MiniLM-L6-v2) or `tfidf` (the fallback).")
    cosine_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval of `mean_pairwise_cosine`, resampling prompts."
    )


class Matrix(_Record):
    """A persona x persona matrix and how strongly its diagonal dominates."""

    labels: list[str]
    values: list[list[float]] = Field(description="Rows: the variant's persona; columns: data.")
    diagonal_dominance: float = Field(
        description="Share of rows whose own column is the best after removing each column's "
        "mean (chance is 1 / personas)."
    )
    lower_is_better: bool
    dominance_interval: list[float] | None = Field(
        None,
        description="95 % bootstrap interval of `diagonal_dominance`, resampling the texts (or "
        "positions) in each column.",
    )


class Stance(_Record):
    """Whether the variant prefers the persona's side of its contested positions: the contract's
    positions with a counterclaim, and each conflict of `data/conflicts.yaml` the persona takes
    part in (claim `assumption_a`, counterclaim `assumption_b`; persona A agrees, B disagrees)."""

    accuracy: float | None = Field(
        description="Share of positions where the preferred side is the contract's."
    )
    positions: int = Field(
        description="Positions with a counterclaim that were scored (conflicts count once per "
        "side)."
    )
    accuracy_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval of the accuracy, resampling positions."
    )
    divergence: float | None = Field(
        description="On claims the contracts (or conflicts) disagree about, the share of persona "
        "pairs whose variants also prefer opposite sides (0 when every persona is alike)."
    )


class Memorisation(_Record):
    """Whether the answers repeat the persona's training text (the memorisation guard)."""

    run_words: int = Field(description="An answer sharing this many consecutive words copies.")
    copy_rate: float = Field(description="Share of answers that copy a training text.")
    copied: int = Field(description="Answers that copy.")
    copy_rate_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval of the copy rate, resampling prompts."
    )
    copy_rate_by_persona: dict[str, float] = Field(
        default_factory=dict, description="The copy rate of each persona's answers."
    )
    max_run: int = Field(description="The longest run of words any answer shares.")
    mean_ngram_share: float = Field(
        description="Mean share of an answer's word 8-grams found in its persona's training texts."
    )
    style_accuracy_without_copies: float | None = Field(
        None, description="Style attribution accuracy on the answers that do not copy."
    )
    content_accuracy_without_copies: float | None = Field(
        None, description="Content attribution accuracy on the answers that do not copy."
    )


class ConflictFidelity(_Record):
    """Reasoning measured where personas disagree (`data/conflicts.yaml`): asked a conflict's
    question, does each side's answer hold its own persona's assumption? Chance is 0.5."""

    conflicts: int = Field(description="Conflicts whose two answers were scored.")
    answers: int = Field(description="Answers scored (two per conflict).")
    likelihood: float | None = Field(
        description="Share of answers after which the base model finds the persona's own "
        "assumption more likely than the opponent's (length-normalised log-likelihood)."
    )
    likelihood_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval, resampling conflicts."
    )
    embedding: float | None = Field(
        None,
        description="Share of answers whose sentence embedding is closer to the persona's own "
        "assumption than to the opponent's.",
    )
    embedding_interval: list[float] | None = None
    by_kind: dict[str, float] = Field(
        default_factory=dict, description="`likelihood` fidelity per conflict kind."
    )
    answer_cosine: float | None = Field(
        None,
        description="Answer divergence: mean cosine between the two sides' answers to the same "
        "question (1: they said the same thing; lower is more different).",
    )
    answer_cosine_interval: list[float] | None = None


class Judge(_Record):
    """Claude's pairwise verdicts: is this variant's answer more like the persona than the
    baseline's answer to the same prompt?"""

    win_rate: float | None = Field(description="Share of valid verdicts for this variant.")
    judgements: int = Field(description="Valid verdicts (answers A or B).")
    invalid: int = Field(0, description="Verdicts that named neither answer.")
    against: str = Field(description="The variant it was compared with (the prompt baseline).")
    model: str


class SourceLanding(_Record):
    """How much of a derived persona's answers land on one of its sources."""

    weight: float = Field(description="The source's weight in the blend (negative: subtracted).")
    expected_share: float = Field(description="w_i / sum |w|: the share the weights predict.")
    content_share: float | None = Field(
        None, description="Share of the answers the content classifier attributes to the source."
    )
    content_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval, resampling topics."
    )
    content_own: float | None = Field(
        None,
        description="Reference: share of the source's own answers (same variant, same topics) "
        "the content classifier attributes to it: where a blend of it alone would land.",
    )
    content_floor: float | None = Field(
        None,
        description="Reference: share of the other sources' own answers (same topics) the "
        "content classifier attributes to this source: where a blend without it would land.",
    )
    content_position: float | None = Field(
        None,
        description="(content share - floor) / (own - floor): 0 = lands like the other sources, "
        "1 = like this source. Compare with the weight share.",
    )
    content_position_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval, resampling topics (paired across personas)."
    )
    style_share: float | None = Field(
        None, description="Share of the answers the style classifier attributes to the source."
    )
    style_interval: list[float] | None = None
    style_own: float | None = None
    style_floor: float | None = None
    style_position: float | None = None
    style_position_interval: list[float] | None = None
    conflict_share: float | None = Field(
        None,
        description="On the conflicts between this source and another source, the share of the "
        "answers after which the base model finds this source's assumption more likely (the "
        "comparison conflict fidelity makes; a tie counts half).",
    )
    conflict_interval: list[float] | None = Field(
        None, description="95 % bootstrap interval, resampling conflicts."
    )
    conflicts: int = Field(0, description="Conflicts between this source and another scored.")
    conflict_own: float | None = Field(
        None,
        description="Reference: on the same conflicts, the share of the source's own answers "
        "that side with it (its conflict fidelity there). Near 0.5 for every source: the "
        "measure cannot tell the sources apart, so it cannot place a blend between them.",
    )


class Landing(_Record):
    """Where a derived persona (blended from its sources' adapters) lands between its sources.
    It has no texts of its own, so it takes no part in attribution, the matrices or homogeneity;
    its fluency, copy rate (against its sources' training texts) and stance (on its composed
    positions) are its own."""

    blend: str = Field(description="Sources, weights and method, e.g. `a:0.7,b:0.3 ties d=0.5`.")
    answers: int
    sources: dict[str, SourceLanding] = Field(default_factory=dict)
    fluency: Fluency | None = None
    memorisation: Memorisation | None = None
    stance: Stance | None = None


class VariantMetrics(_Record):
    personas: list[str] = Field(description="The personas this variant was evaluated for.")
    answers: int = Field(description="Answers generated (personas x held-out prompts).")
    attribution_style: Attribution | None = None
    attribution_content: Attribution | None = None
    fluency: Fluency | None = None
    homogeneity: Homogeneity | None = None
    perplexity: Matrix | None = Field(
        None, description="Held-out corpus perplexity: row persona's variant, column's corpus."
    )
    belief: Matrix | None = Field(
        None, description="Mean log-likelihood of column persona's positions under row's variant."
    )
    stance: Stance | None = None
    memorisation: Memorisation | None = None
    conflicts: ConflictFidelity | None = None
    judge: Judge | None = None
    landing: dict[str, Landing] = Field(
        default_factory=dict, description="Derived persona -> where it lands between its sources."
    )


class Skipped(_Record):
    persona: str
    variant: str
    reason: str


class EvalReport(_Record):
    schema_version: int = SCHEMA_VERSION
    created_at: str
    data_rev: str = ""
    base_model: str
    personas: list[str] = Field(description="The personas with texts of their own evaluated.")
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="Derived personas evaluated (answers only; `VariantMetrics.landing`), with "
        "their blend.",
    )
    variants: list[str]
    heldout_topics: list[str] = Field(description="Topic ids of the prompts (never trained on).")
    conflict_ids: list[str] = Field(
        default_factory=list,
        description="Conflicts whose questions were asked (held-out prompts `conflict-<id>`).",
    )
    classifier_texts: str = Field(
        "",
        description="What the attribution classifiers were fitted on (train + validation texts).",
    )
    ceiling_style: Attribution | None = Field(
        None, description="The style classifier on the real held-out corpus: the best to hope for."
    )
    ceiling_content: Attribution | None = None
    real_homogeneity: Homogeneity | None = Field(
        None, description="Homogeneity of the personas' real held-out corpus, for comparison."
    )
    metrics: dict[str, VariantMetrics] = Field(default_factory=dict, description="By variant.")
    skipped: list[Skipped] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Why a metric is missing, etc.")
