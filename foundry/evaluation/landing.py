"""Where a derived persona lands between its sources (issue 22): is a 0.7/0.3 blend 70 % one?

A derived persona (blended from its sources' adapters, `foundry merge`) answers the held-out
prompts like any persona. Its answers are read three ways against its sources:

- content and style share: the share of its answers the evaluation's classifiers (fitted on the
  real personas' texts) attribute to each source, with 95 % intervals resampling topics;
- conflict share: on each conflict between two of its sources (its question is among the
  prompts), after its answer, does the bare base model find source A's or source B's assumption
  more likely? The same length-normalised continuation comparison conflict fidelity makes
  (`foundry.evaluation.conflicts.continuation_nll`); intervals resample conflicts;
- expected share: w_i / sum |w|.

Public entry points: `landing_rows` (the scored rows it needs), `source_conflicts`,
`source_landing` (the shares, given the classifiers and the scored totals), `derived_lines`
(the report's section).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from foundry.data.derived import landing_shares
from foundry.data.schemas import Conflict, DerivedFrom
from foundry.evaluation.conflicts import SEPARATOR, continuation_nll, topic_id
from foundry.evaluation.intervals import RESAMPLES, bootstrap_interval, percentile_interval
from foundry.evaluation.schema import EvalReport, SourceLanding
from foundry.training.scoring import ScoreRow

Tag = tuple[str, ...]
LANDING = "landing"  # tag kind of the conflict rows: ("landing", conflict id, persona, part)


def source_conflicts(conflicts: Sequence[Conflict], blend: DerivedFrom) -> list[Conflict]:
    """The conflicts whose two personas are both sources of the blend."""
    sources = {s.slug for s in blend.sources}
    return [c for c in conflicts if {c.persona_a, c.persona_b} <= sources]


def landing_rows(
    conflicts: Sequence[Conflict], slug: str, answers: Sequence[dict[str, Any]], base_adapter: str
) -> list[tuple[Tag, ScoreRow]]:
    """Three rows per source conflict under the bare base model: the derived persona's answer
    alone, and continued by assumption A and by assumption B."""
    by_topic = {row["topic_id"]: row for row in answers if row["persona"] == slug}
    rows = []
    for conflict in conflicts:
        row = by_topic.get(topic_id(conflict))
        if row is None:
            continue
        answer = row["answer"] or " "
        for part, completion in (
            ("answer", answer),
            ("a", answer + SEPARATOR + conflict.assumption_a),
            ("b", answer + SEPARATOR + conflict.assumption_b),
        ):
            tag = (LANDING, conflict.id, slug, part)
            rows.append((tag, ScoreRow(row["prompt"], completion, base_adapter)))
    return rows


def source_landing(
    blend: DerivedFrom,
    slug: str,
    answers: Sequence[dict[str, Any]],
    classifiers: Mapping[str, Any] | None,
    conflicts: Sequence[Conflict],
    totals: Mapping[Tag, Sequence[float]],
    seed: int = 0,
    source_answers: Mapping[str, Sequence[dict[str, Any]]] | None = None,
) -> dict[str, SourceLanding]:
    """Per source: its expected share, the classifiers' shares and the conflict share, and, when
    the sources' own answers are given, where those land (the references a share is read
    against) and the blend's position between them.

    Args:
        blend: the derived persona's blend.
        slug: the derived persona.
        answers: its answer rows ({topic_id, answer}).
        classifiers: the evaluation's `style` and `content` classifiers (None: fewer than two
            real personas, no shares).
        conflicts: the conflicts between its sources that it answered.
        totals: (summed NLL, tokens) by tag of the `landing_rows` and the conflict fidelity rows.
        seed: the bootstrap's seed.
        source_answers: source slug -> its own answer rows in the same variant.
    """
    expected = landing_shares(blend)
    texts = [row["answer"] or " " for row in answers]
    topics = [row["topic_id"] for row in answers]
    predicted = {kind: list(c.predict(texts)) for kind, c in (classifiers or {}).items() if texts}
    own_predicted = _source_predictions(classifiers, source_answers or {})
    votes = _conflict_votes(conflicts, slug, totals)
    found = {}
    for source in blend.sources:
        landing = SourceLanding(
            weight=source.weight, expected_share=round(expected[source.slug], 4)
        )
        for kind, labels in predicted.items():
            hits = [float(label == source.slug) for label in labels]
            setattr(landing, f"{kind}_share", round(sum(hits) / len(hits), 4))
            setattr(landing, f"{kind}_interval", bootstrap_interval(hits, topics, seed=seed))
            by_topic = dict(zip(topics, hits, strict=True))
            references = own_predicted.get(kind, {})
            if source.slug in references and len(references) >= 2:
                _place(landing, kind, source.slug, by_topic, references, seed)
        mine = [(c.id, v if c.persona_a == source.slug else 1.0 - v) for c, v in votes
                if source.slug in (c.persona_a, c.persona_b)]  # fmt: skip
        if mine:
            landing.conflicts = len(mine)
            landing.conflict_share = round(sum(v for _, v in mine) / len(mine), 4)
            landing.conflict_interval = bootstrap_interval(
                [v for _, v in mine], [c for c, _ in mine], seed=seed
            )
            landing.conflict_own = _own_conflict_share(conflicts, source.slug, totals)
        found[source.slug] = landing
    return found


def _source_predictions(
    classifiers: Mapping[str, Any] | None, source_answers: Mapping[str, Sequence[dict[str, Any]]]
) -> dict[str, dict[str, dict[str, str]]]:
    """kind -> source -> topic -> the persona the classifier gives the source's own answer."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    for kind, classifier in (classifiers or {}).items():
        for source, rows in source_answers.items():
            if rows:
                labels = classifier.predict([row["answer"] or " " for row in rows])
                found.setdefault(kind, {})[source] = {
                    row["topic_id"]: label for row, label in zip(rows, labels, strict=True)
                }
    return found


def _place(
    landing: SourceLanding,
    kind: str,
    source: str,
    blend_hits: Mapping[str, float],
    references: Mapping[str, Mapping[str, str]],
    seed: int,
) -> None:
    """Set `<kind>_own`, `_floor`, `_position` and its interval on the topics the blend and
    every source answered, resampling those topics together (paired)."""
    common = sorted(set(blend_hits).intersection(*(set(r) for r in references.values())))
    if not common:
        return
    others = [s for s in references if s != source]
    blend = np.array([blend_hits[t] for t in common])
    own = np.array([float(references[source][t] == source) for t in common])
    floor = np.array([[float(references[o][t] == source) for o in others] for t in common])
    floor = floor.mean(axis=1)
    setattr(landing, f"{kind}_own", round(float(own.mean()), 4))
    setattr(landing, f"{kind}_floor", round(float(floor.mean()), 4))
    position = _position(blend.mean(), own.mean(), floor.mean())
    if position is None:
        return
    setattr(landing, f"{kind}_position", round(position, 4))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(common), size=(RESAMPLES, len(common)))
    spans = own[draws].mean(axis=1) - floor[draws].mean(axis=1)
    kept = spans > 0
    values = (blend[draws].mean(axis=1)[kept] - floor[draws].mean(axis=1)[kept]) / spans[kept]
    setattr(landing, f"{kind}_position_interval", percentile_interval(values))


def _position(share: float, own: float, floor: float) -> float | None:
    """Where `share` sits from `floor` (0) to `own` (1); None when the source's own answers are
    not attributed to it more often than the others' are (no scale to place on)."""
    span = own - floor
    return float((share - floor) / span) if span > 0 else None


def _own_conflict_share(
    conflicts: Sequence[Conflict], source: str, totals: Mapping
) -> float | None:
    """The share of the source's own answers to `conflicts` after which its own assumption is the
    more likely continuation (conflict fidelity's rows, tag ("conflict", id, persona))."""
    votes = []
    for conflict in conflicts:
        tag = ("conflict", conflict.id, source)
        own, other = continuation_nll(totals, tag, "own"), continuation_nll(totals, tag, "other")
        if own is not None and other is not None:
            votes.append(1.0 if own < other else 0.0 if own > other else 0.5)
    return round(sum(votes) / len(votes), 4) if votes else None


def _conflict_votes(
    conflicts: Sequence[Conflict], slug: str, totals: Mapping[Tag, Sequence[float]]
) -> list[tuple[Conflict, float]]:
    """Per conflict: 1 when assumption A is the more likely continuation of the answer, 0 when
    B is, a half for a tie (as conflict fidelity counts)."""
    votes = []
    for conflict in conflicts:
        tag = (LANDING, conflict.id, slug)
        a, b = continuation_nll(totals, tag, "a"), continuation_nll(totals, tag, "b")
        if a is not None and b is not None:
            votes.append((conflict, 1.0 if a < b else 0.0 if a > b else 0.5))
    return votes


def derived_lines(report: EvalReport) -> list[str]:
    """The report's "Derived personas" section: per variant and derived persona, each source's
    weight share against its content, style and conflict shares (with 95 % intervals)."""
    if not report.derived:
        return []
    lines = [
        "## Derived personas",
        "",
        "Blended from their sources' adapters (`foundry merge`); no texts of their own, so they "
        "are left out of every figure above. Each row: a source, the share its weight predicts "
        "(w / sum |w|), and the share of the blend's answers the content and style classifiers "
        "give it, read against the same share of the source's own answers (own) and of the "
        "other sources' answers (others'), on the same topics; the position places the blend "
        "on that scale (0: like the other sources, 1: like this one), to compare with the "
        "weight share. The conflict side share is the share of its answers to its sources' "
        "conflicts that side with the source; own: the source's own answers' share there (near "
        "0.5 for each source, the measure cannot tell the sources apart).",
        "",
    ]
    for variant, metrics in report.metrics.items():
        for slug, landing in metrics.landing.items():
            own = landing.fluency.nll_under_base if landing.fluency else None
            own_interval = landing.fluency.nll_interval if landing.fluency else None
            copy = landing.memorisation.copy_rate if landing.memorisation else None
            stance = landing.stance.accuracy if landing.stance else None
            stance_interval = landing.stance.accuracy_interval if landing.stance else None
            lines += [
                f"### {slug} ({variant}): {landing.blend}",
                "",
                f"Fluency NLL {_share(own, own_interval)}, copy rate {_share(copy, None)}, stance "
                f"on its composed positions {_share(stance, stance_interval)}; {landing.answers} "
                "answers.",
                "",
                "| source | weight share | content share (own / others') | content position | "
                "style share (own / others') | style position | conflict side share (own) |",
                "|---|---|---|---|---|---|---|",
            ]
            for source, s in landing.sources.items():
                lines.append(
                    f"| {source} | {s.expected_share:.2f} | "
                    f"{_share(s.content_share, s.content_interval)} "
                    f"({_share(s.content_own, None)} / {_share(s.content_floor, None)}) | "
                    f"{_share(s.content_position, s.content_position_interval)} | "
                    f"{_share(s.style_share, s.style_interval)} "
                    f"({_share(s.style_own, None)} / {_share(s.style_floor, None)}) | "
                    f"{_share(s.style_position, s.style_position_interval)} | "
                    f"{_share(s.conflict_share, s.conflict_interval)} ({s.conflicts}; own "
                    f"{_share(s.conflict_own, None)}) |"
                )
            lines.append("")
    return lines


def _share(value: float | None, interval: Sequence[float] | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")
