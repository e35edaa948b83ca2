"""The measurements of one variant, and the real corpus's numbers to compare them with.

`measure_variant` scores a variant's answers (style and content attribution, fluency,
homogeneity) and the variant itself (perplexity matrix on the held-out corpus, stance and belief
matrix on the contracts' positions). All log-likelihoods of one variant are computed in one
mixed-adapter scoring pass, batched persona by persona so that a persona's new adapters or answers
redo only its own batches (`foundry.evaluation.cache`); embeddings go through the same cache.
Metrics that need two personas are left empty with a note. A derived persona (`setup.derived`)
answers like the others but is kept out of every figure that compares the personas' own data (its
rows are scored in its own batches, so theirs are unchanged); it gets a `Landing` record instead
(`foundry.evaluation.landing`).
"""

from __future__ import annotations

import base64
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from foundry.data.attribution import fit_content_classifier, fit_style_classifier
from foundry.data.framing import BASE_ADAPTER, GENERIC_PROMPT
from foundry.evaluation.answers import EvalSetup, LoadModel
from foundry.evaluation.cache import BatchJob, EvalCache
from foundry.evaluation.conflicts import conflict_fidelity, conflict_rows, stance_items
from foundry.evaluation.embeddings import embed_texts, minilm_identity
from foundry.evaluation.intervals import bootstrap_interval, dominance_interval
from foundry.evaluation.landing import landing_rows, source_conflicts, source_landing
from foundry.evaluation.memorisation import memorisation, training_indexes
from foundry.evaluation.metrics import (
    attribution_scores,
    fluency,
    homogeneity,
    persona_matrix,
    stance_metrics,
)
from foundry.evaluation.schema import EvalReport, Landing, VariantMetrics
from foundry.evaluation.scoring import score_batches
from foundry.steering.variants import ResolvedVariant
from foundry.training.scoring import ScoreRow

Tag = tuple[str, ...]
# Tags that end in an item part (a prompt, a text, a position): the metric cell is the tag's
# first N parts, and the items are what its bootstrap interval resamples.
# A derived persona's fluency rows are its own cell: ("derived-fluency", slug, topic).
ITEM_KINDS = {"fluency": 1, "ppl": 3, "belief": 3, "derived-fluency": 2}
# A matrix's cell from its mean NLL (exactly as the point estimate always was) and the same on
# arrays (for the interval's draws), and whether lower is better.
CELLS: dict[str, tuple[Callable[[float], float], Callable[[Any], Any], bool]] = {
    "ppl": (math.exp, np.exp, True),
    "belief": (lambda x: -x, np.negative, False),
}


def real_corpus_baselines(setup: EvalSetup, report: EvalReport, cache: EvalCache) -> None:
    """The classifiers' accuracy on the real held-out corpus (the ceiling) and its homogeneity."""
    if len(setup.slugs) < 2:
        report.notes.append(
            "attribution, homogeneity and the persona matrices need two personas or more; "
            f"evaluated {len(setup.slugs)}"
        )
        return
    texts = [(slug, text) for slug in setup.slugs for _, text in setup.heldout[slug]]
    for kind, classifier in _classifiers(setup).items():
        predicted = classifier.predict([t for _, t in texts])
        scores = attribution_scores([s for s, _ in texts], predicted, setup.slugs)
        setattr(report, f"ceiling_{kind}", scores)
    depth = min(len(setup.heldout[s]) for s in setup.slugs)
    groups = [[setup.heldout[s][k][1] for s in setup.slugs] for k in range(depth)]
    report.real_homogeneity = _homogeneity(setup, groups, cache)


def measure_variant(
    load: LoadModel,
    cache: EvalCache,
    setup: EvalSetup,
    resolved: Sequence[ResolvedVariant],
    answers: Sequence[dict[str, Any]],
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> VariantMetrics:
    """Every metric of one variant (`resolved`: its persona rows); `load` gives the model when a
    scoring batch is not cached."""
    variant = resolved[0].variant
    every = [row for row in answers if row["variant"] == variant]
    by_persona = {r.persona: r for r in resolved}
    real = [slug for slug in by_persona if slug not in setup.derived]
    mine = [row for row in every if row["persona"] not in setup.derived]
    size = setup.config.evaluation.batch_size
    groups = _scoring_groups(setup, by_persona, every)
    tags = [tag for _, rows in groups for tag, _ in rows]
    batches = [
        (owner, [row for _, row in rows[i : i + size]])
        for owner, rows in groups
        for i in range(0, len(rows), size)
    ]
    hook = progress(f"{variant}: scoring", len(tags)) if progress else None
    scores = score_batches(load, batches, cache, hook=hook)
    totals, items = _nll_totals(tags, scores)
    mean_nll = {tag: nll / max(tokens, 1) for tag, (nll, tokens) in totals.items()}
    seed = setup.config.evaluation.seed
    metrics = VariantMetrics(personas=real, answers=len(mine))
    texts = [row["answer"] for row in mine]
    metrics.fluency = fluency(texts, mean_nll.get(("fluency",)), _fluency_interval(items, seed))
    if len(real) >= 2:
        _attribution(setup, mine, metrics)
        metrics.homogeneity = _homogeneity(setup, _answer_groups(mine, real), cache)
        metrics.perplexity = _matrix(mean_nll, items, "ppl", real, seed)
        metrics.belief = _matrix(mean_nll, items, "belief", real, seed)
    metrics.stance = _stance(setup, mean_nll, real)
    backend = setup.config.evaluation.embeddings
    metrics.conflicts = conflict_fidelity(
        setup.conflicts, mine, totals, lambda texts: _embed(texts, backend, cache), seed
    )
    if "copy_indexes" not in setup.cache:  # built once, shared by every variant
        setup.cache["copy_indexes"] = training_indexes(setup.train_texts)
    metrics.memorisation = memorisation(
        mine,
        setup.cache["copy_indexes"],
        setup.config.evaluation.copy_run_words,
        _classifiers(setup) if len(real) >= 2 else None,
        seed=setup.config.evaluation.seed,
    )
    for slug in (s for s in by_persona if s in setup.derived):
        own = [row for row in every if row["persona"] == slug]
        metrics.landing[slug] = _landing(setup, slug, own, totals, items, mean_nll, every)
    return metrics


def _landing(
    setup: EvalSetup,
    slug: str,
    answers: Sequence[dict[str, Any]],
    totals: dict[Tag, list[float]],
    items: dict[Tag, list[float]],
    mean_nll: dict[Tag, float],
    every: Sequence[dict[str, Any]],
) -> Landing:
    """A derived persona's own figures (fluency, copy rate, stance) and its landing between its
    sources (`foundry.evaluation.landing`), read against the sources' own answers in `every`."""
    blend, seed = setup.derived[slug], setup.config.evaluation.seed
    rows = [(tag[2], nll, tokens) for tag, (nll, tokens) in items.items()
            if tag[:2] == ("derived-fluency", slug)]  # fmt: skip
    interval = bootstrap_interval(
        [nll / max(tokens, 1) for _, nll, tokens in rows], [topic for topic, _, _ in rows],
        weights=[tokens for _, _, tokens in rows], seed=seed,
    )  # fmt: skip
    texts = [row["answer"] for row in answers]
    classifiers = _classifiers(setup) if len(setup.slugs) >= 2 else None
    return Landing(
        blend=blend.label(),
        answers=len(answers),
        sources=source_landing(
            blend,
            slug,
            answers,
            classifiers,
            source_conflicts(setup.conflicts, blend),
            totals,
            seed,
            {s.slug: [row for row in every if row["persona"] == s.slug] for s in blend.sources},
        ),  # fmt: skip
        fluency=fluency(texts, mean_nll.get(("derived-fluency", slug)), interval),
        memorisation=memorisation(
            answers,
            setup.cache["copy_indexes"],
            setup.config.evaluation.copy_run_words,
            None,
            seed=seed,
        ),  # fmt: skip
        stance=_stance(setup, mean_nll, [slug]),
    )


def _scoring_groups(
    setup: EvalSetup, by_persona: dict[str, ResolvedVariant], answers: Sequence[dict[str, Any]]
) -> list[tuple[str, list[tuple[Tag, ScoreRow]]]]:
    """Every log-likelihood one variant needs, tagged with what it is for, in two groups per
    persona.

    A persona's first group holds the corpus and belief rows under its adapter (the same for every
    persona of the base variant: their batches are equal and scored once); its second holds
    its stance rows (contract and conflicts) and the base model's rows on its answers (fluency,
    conflicts). Each part is sorted by length so that a batch pads little (scoring ran 6%
    faster). Tags only name rows: they never change which rows a batch holds or their order (the
    cache keys batches by their rows).
    """
    groups = []
    real = [slug for slug in by_persona if slug not in setup.derived]
    for slug, variant in by_persona.items():
        if slug in setup.derived:
            groups.append((slug, sorted(_derived_rows(setup, variant, answers), key=_length)))
            continue
        adapter, system = variant.adapter, variant.system
        steer = (variant.steer,) if variant.steer else ()
        matrix: list[tuple[Tag, ScoreRow]] = []
        for other in real:
            for k, (prompt, text) in enumerate(setup.heldout.get(other, [])):
                row = ScoreRow(prompt, text, adapter, system, steer)
                matrix.append((("ppl", slug, other, str(k)), row))
            for k, statement in enumerate(_held_beliefs(setup, other)):
                row = ScoreRow(GENERIC_PROMPT, statement, adapter, system, steer)
                matrix.append((("belief", slug, other, str(k)), row))
        own: list[tuple[Tag, ScoreRow]] = []
        for key, position in setup.judged_positions(slug):
            if position.counterclaim:
                for side, text in (("claim", position.claim), ("counter", position.counterclaim)):
                    row = ScoreRow(GENERIC_PROMPT, text, adapter, system, steer)
                    own.append((("stance", slug, key, side), row))
        own += [
            (
                ("fluency", str(row["topic_id"]), slug),
                ScoreRow(row["prompt"], row["answer"] or " ", BASE_ADAPTER),
            )
            for row in answers
            if row["persona"] == slug
        ]
        own += conflict_rows(setup.conflicts, variant, answers)
        # Two groups, so no batch mixes them: the base variant's matrix batches stay equal
        # across personas however few matrix rows there are.
        groups += [(slug, sorted(matrix, key=_length)), (slug, sorted(own, key=_length))]
    return groups


def _derived_rows(
    setup: EvalSetup, variant: ResolvedVariant, answers: Sequence[dict[str, Any]]
) -> list[tuple[Tag, ScoreRow]]:
    """A derived persona's rows: stance on its composed positions (under its variant), the base
    model on its answers (fluency) and on its answers to its sources' conflicts (landing)."""
    slug, steer = variant.persona, (variant.steer,) if variant.steer else ()
    rows: list[tuple[Tag, ScoreRow]] = []
    for key, position in setup.judged_positions(slug):
        if position.counterclaim:
            for side, text in (("claim", position.claim), ("counter", position.counterclaim)):
                row = ScoreRow(GENERIC_PROMPT, text, variant.adapter, variant.system, steer)
                rows.append((("stance", slug, key, side), row))
    rows += [
        (
            ("derived-fluency", slug, str(row["topic_id"])),
            ScoreRow(row["prompt"], row["answer"] or " ", BASE_ADAPTER),
        )
        for row in answers
        if row["persona"] == slug
    ]
    conflicts = source_conflicts(setup.conflicts, setup.derived[slug])
    return rows + landing_rows(conflicts, slug, answers, BASE_ADAPTER)


def _nll_totals(
    tags: Sequence[Tag], scores: Sequence[Any]
) -> tuple[dict[Tag, list[float]], dict[Tag, list[float]]]:
    """Summed [NLL, tokens] per metric cell (a tag of `ITEM_KINDS` cut to its cell), summed in
    row order as the point estimates always were, and per full tag (one item: for intervals)."""
    totals: dict[Tag, list[float]] = defaultdict(lambda: [0.0, 0.0])
    items: dict[Tag, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for tag, score in zip(tags, scores, strict=True):
        cell = tag[: ITEM_KINDS[tag[0]]] if tag[0] in ITEM_KINDS else tag
        for total in [totals[cell]] + ([items[tag]] if cell != tag else []):
            total[0] += score.nll
            total[1] += score.tokens
    return totals, items


def _fluency_interval(items: dict[Tag, list[float]], seed: int) -> list[float] | None:
    """The token-weighted mean NLL's interval, resampling prompts (tags `fluency`, topic, slug)."""
    rows = [(tag[1], nll, tokens) for tag, (nll, tokens) in items.items() if tag[0] == "fluency"]
    return bootstrap_interval(
        [nll / max(tokens, 1) for _, nll, tokens in rows],
        [topic for topic, _, _ in rows],
        weights=[tokens for _, _, tokens in rows],
        seed=seed,
    )


def _length(tagged: tuple[Tag, ScoreRow]) -> int:
    row = tagged[1]
    return len(row.system or "") + len(row.prompt) + len(row.completion)


def _held_beliefs(setup: EvalSetup, slug: str) -> list[str]:
    """What the persona believes: each claim it agrees with, or the counterclaim it holds."""
    held = []
    for _, position in setup.judged_positions(slug):
        if position.stance == "agree":
            held.append(position.claim)
        elif position.counterclaim:
            held.append(position.counterclaim)
    return held


def _attribution(
    setup: EvalSetup, answers: Sequence[dict[str, Any]], metrics: VariantMetrics
) -> None:
    true = [row["persona"] for row in answers]
    texts = [row["answer"] or " " for row in answers]
    topics = [row["topic_id"] for row in answers]
    seed = setup.config.evaluation.seed
    for kind, classifier in _classifiers(setup).items():
        predicted = classifier.predict(texts)
        scores = attribution_scores(true, predicted, setup.slugs)
        right = [float(p == t) for p, t in zip(predicted, true, strict=True)]
        scores.accuracy_interval = bootstrap_interval(right, topics, seed=seed)
        for slug in setup.slugs:
            own = [i for i, persona in enumerate(true) if persona == slug]
            interval = bootstrap_interval(
                [right[i] for i in own], [topics[i] for i in own], seed=seed
            )
            if interval is not None:
                scores.recall_intervals[slug] = interval
        setattr(metrics, f"attribution_{kind}", scores)


def _classifiers(setup: EvalSetup) -> dict[str, Any]:
    """Style and content classifiers on the personas' real train + validation texts (fitted once;
    the test texts they are measured on for the ceiling are never among them)."""
    if "classifiers" not in setup.cache:
        texts = [t for slug in setup.slugs for t in setup.classifier_texts[slug]]
        labels = [slug for slug in setup.slugs for _ in setup.classifier_texts[slug]]
        seed = setup.config.training.seed
        setup.cache["classifiers"] = {
            "style": fit_style_classifier(texts, labels, seed=seed),
            "content": fit_content_classifier(texts, labels, seed=seed),
        }
    return setup.cache["classifiers"]


def _answer_groups(answers: Sequence[dict[str, Any]], slugs: list[str]) -> list[list[str]]:
    """For each prompt, the personas' answers (prompts every persona answered)."""
    by_topic: dict[str, dict[str, str]] = defaultdict(dict)
    for row in answers:
        by_topic[row["topic_id"]][row["persona"]] = row["answer"] or " "
    return [[group[s] for s in slugs] for group in by_topic.values() if len(group) == len(slugs)]


def _homogeneity(setup: EvalSetup, groups: list[list[str]], cache: EvalCache):
    if not groups:
        return None
    flat = [text for group in groups for text in group]
    matrix, backend = _embed(flat, setup.config.evaluation.embeddings, cache)
    width = len(groups[0])
    rows = [matrix[i * width : (i + 1) * width] for i in range(len(groups))]
    return homogeneity(rows, backend, seed=setup.config.evaluation.seed)


def _embed(texts: list[str], backend: str, cache: EvalCache) -> tuple[np.ndarray, str]:
    """`embed_texts` as one cached batch (MiniLM pads texts in batches: a vector depends on the
    other texts). `auto` falling back to TF-IDF although MiniLM is installed is not kept."""
    minilm = minilm_identity() if backend != "tfidf" else None
    payload = {"backend": backend, "minilm": minilm, "texts": texts}

    def compute() -> dict[str, Any]:
        matrix, used = embed_texts(texts, backend)
        data = base64.b64encode(np.ascontiguousarray(matrix).tobytes()).decode("ascii")
        return {"backend": used, "dtype": matrix.dtype.str, "shape": matrix.shape, "data": data}

    def is_kept(value: dict[str, Any]) -> bool:
        return not (backend == "auto" and minilm and value["backend"] != "minilm")

    key = cache.key("embeddings", payload, use_model=False)
    [value] = cache.run("embeddings", [BatchJob(key, None, len(texts), compute, is_kept)])
    raw = base64.b64decode(value["data"])
    matrix = np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
    return matrix, value["backend"]


def _matrix(
    mean_nll: dict[Tag, float],
    items: dict[Tag, list[float]],
    kind: str,
    slugs: list[str],
    seed: int,
):
    if not all((kind, a, b) in mean_nll for a in slugs for b in slugs):
        return None
    transform, on_arrays, lower_is_better = CELLS[kind]
    values = [[transform(mean_nll[(kind, a, b)]) for b in slugs] for a in slugs]
    matrix = persona_matrix(slugs, values, lower_is_better)
    columns = _item_columns(items, kind, slugs)
    if columns is not None:
        matrix.dominance_interval = dominance_interval(
            columns, on_arrays, lower_is_better, seed=seed
        )
    return matrix


def _item_columns(
    items: dict[Tag, list[float]], kind: str, slugs: list[str]
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Per column: (NLL, tokens) of each row on each of the column's items (rows x items), or
    None when the rows were not scored on the same number of items."""
    by_cell: dict[Tag, list[list[float]]] = defaultdict(list)
    for tag, (nll, tokens) in items.items():
        if tag[0] == kind:
            by_cell[tag[:3]].append([int(tag[3]), nll, tokens])
    columns = []
    for other in slugs:
        cells = [sorted(by_cell[(kind, slug, other)]) for slug in slugs]  # by item index
        if len({len(cell) for cell in cells}) != 1:
            return None
        table = np.array(cells, dtype=np.float64).reshape(len(slugs), -1, 3)
        columns.append((table[:, :, 1], table[:, :, 2]))
    return columns


def _stance(setup: EvalSetup, mean_nll: dict[Tag, float], slugs: list[str]):
    prefs, stances, claims = {}, {}, {}
    for slug in slugs:
        items = [(key, p.claim, p.stance) for key, p in setup.judged_positions(slug)]
        items += [(k, claim, stance) for k, claim, _, stance in stance_items(setup.conflicts, slug)]
        for key, text, stance in items:
            if ("stance", slug, key, "claim") not in mean_nll:
                continue
            claim = mean_nll[("stance", slug, key, "claim")]
            counter = mean_nll[("stance", slug, key, "counter")]
            prefs[(slug, key)] = counter - claim  # > 0: the claim is more likely
            stances[(slug, key)] = stance
            claims[(slug, key)] = text
    if not prefs:
        return None
    return stance_metrics(prefs, stances, claims, seed=setup.config.evaluation.seed)
