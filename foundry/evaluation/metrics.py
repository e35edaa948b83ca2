"""The evaluation's numbers, as pure functions of predictions, texts, embeddings and scores.

Each returns a record of `foundry.evaluation.schema`: `attribution_scores` (who-wrote-this accuracy,
macro-F1, confusion), `fluency` (with `distinct_n`), `homogeneity` (how alike the personas'
answers to one prompt are), `persona_matrix` (with `diagonal_dominance`: does each persona's
variant prefer its own persona's data?) and `stance_metrics` (does a variant prefer its
persona's side of a contested claim?). No model runs here: the evaluation stage computes the
inputs; their bootstrap intervals are `foundry.evaluation.intervals`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from foundry.data.textnorm import words
from foundry.evaluation.intervals import bootstrap_interval
from foundry.evaluation.schema import Attribution, Fluency, Homogeneity, Matrix, Stance

STANCES = ("agree", "disagree")


def attribution_scores(
    true: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> Attribution:
    """Score who-wrote-this predictions against the true personas.

    Args:
        true: The persona of each text.
        predicted: The classifier's persona for each text.
        labels: The personas, in the order of the confusion matrix. Macro-F1 averages over all
            of them; a label that is neither true nor predicted anywhere scores 0.

    Returns:
        Accuracy (a prediction outside `labels` counts as wrong), macro-F1 and the confusion
        matrix (rows: true, columns: predicted).

    Raises:
        ValueError: If the sequences differ in length or are empty, or `labels` is empty.
    """
    from sklearn.metrics import confusion_matrix, f1_score

    if len(true) != len(predicted):
        raise ValueError(
            f"got {len(true)} true personas but {len(predicted)} predictions; pass one per text"
        )
    if not true or not labels:
        raise ValueError(
            f"attribution needs at least one text and one label, got {len(true)} texts and "
            f"labels {list(labels)}"
        )
    true, predicted, labels = list(true), list(predicted), list(labels)
    accuracy = sum(t == p for t, p in zip(true, predicted, strict=True)) / len(true)
    macro_f1 = f1_score(true, predicted, labels=labels, average="macro", zero_division=0)
    confusion = confusion_matrix(true, predicted, labels=labels)
    return Attribution(
        accuracy=accuracy,
        macro_f1=float(macro_f1),
        labels=labels,
        confusion=confusion.astype(int).tolist(),
    )


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams over all n-grams of `texts` (n-grams never cross two texts).

    Args:
        texts: The texts, split into words with `foundry.data.textnorm.words`.
        n: The n-gram length (1 for words, 2 for bigrams).

    Returns:
        The share in [0, 1]; 1 means no n-gram repeats; 0.0 when there is no n-gram at all.

    Raises:
        ValueError: If `n` is less than 1.
    """
    if n < 1:
        raise ValueError(f"`n` must be at least 1, got {n}")
    grams = []
    for text in texts:
        tokens = words(text)
        grams.extend(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def fluency(
    texts: Sequence[str], nll_under_base: float | None, nll_interval: list[float] | None = None
) -> Fluency:
    """Repetition and length of a variant's answers, beside their likelihood under the base model.

    Args:
        texts: The variant's answers.
        nll_under_base: Mean token negative log-likelihood of the answers under the base model,
            or None when it was not computed.
        nll_interval: its 95 % bootstrap interval over prompts, when computed.

    Returns:
        distinct-1, distinct-2 and mean length in words (all 0.0 for no texts).
    """
    lengths = [len(words(text)) for text in texts]
    return Fluency(
        nll_under_base=nll_under_base,
        nll_interval=nll_interval,
        distinct_1=distinct_n(texts, 1),
        distinct_2=distinct_n(texts, 2),
        mean_words=float(np.mean(lengths)) if lengths else 0.0,
    )


def homogeneity(groups: Sequence[np.ndarray], backend: str, seed: int = 0) -> Homogeneity:
    """How alike the personas' answers to the same prompt are, averaged over prompts.

    Args:
        groups: One matrix per prompt whose rows embed the personas' answers to it. Rows are
            L2-normalised here (an all-zero row stays zero and has cosine 0 with everything).
            Groups with fewer than two rows have no pair to compare and are skipped.
        backend: The embedding backend that produced the rows, recorded as given.
        seed: the seed of the cosine's bootstrap interval (resampling the groups: prompts).

    Returns:
        Mean pairwise cosine (over all pairs within a group, then over groups) with its 95 %
        interval, and mean effective rank: exp(Shannon entropy of the singular values normalised
        to sum 1), from 1 (every answer points the same way) to the number of rows (mutually
        orthogonal answers).

    Raises:
        ValueError: If a group is not a 2-D matrix, or no group has two rows.
    """
    cosines, ranks = [], []
    for index, group in enumerate(groups):
        rows = np.asarray(group, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"group {index} must be a 2-D matrix of embeddings, got {rows.shape}")
        if len(rows) < 2:
            continue
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        unit = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
        similarity = unit @ unit.T
        cosines.append(
            float(np.mean([similarity[i, j] for i, j in combinations(range(len(unit)), 2)]))
        )
        ranks.append(effective_rank(unit))
    if not cosines:
        raise ValueError(
            f"homogeneity needs a group with at least two answers, got {len(groups)} groups with "
            "fewer; embed more than one persona's answers per prompt"
        )
    return Homogeneity(
        mean_pairwise_cosine=float(np.mean(cosines)),
        effective_rank=float(np.mean(ranks)),
        backend=backend,
        cosine_interval=bootstrap_interval(cosines, list(range(len(cosines))), seed=seed),
    )


def effective_rank(matrix: np.ndarray) -> float:
    """exp(Shannon entropy) of the singular values of `matrix`, normalised to sum 1 (0 if none)."""
    singular = np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
    total = singular.sum()
    if total <= 0:
        return 0.0
    # Round-off leaves ~1e-16 singular values on rank-deficient input; they are zeros.
    shares = singular[singular > total * 1e-12] / total
    return float(np.exp(-np.sum(shares * np.log(shares))))


def diagonal_dominance(
    values: np.ndarray | Sequence[Sequence[float]], lower_is_better: bool
) -> float:
    """Share of rows whose own (diagonal) entry is the best in the row, after centring columns.

    Subtracting each column's mean first keeps a column that every row finds easy (a short,
    plain corpus) from winning every row: what counts is how a row differs from the others.

    Args:
        values: A square matrix; row i is persona i's variant, column j persona j's data.
        lower_is_better: True for perplexities and losses, False for log-likelihoods.

    Returns:
        The share of rows in [0, 1] whose diagonal entry strictly beats every other entry in the
        row (a tie is not a win). Chance is 1 / rows; a 1x1 matrix gives 1.0.

    Raises:
        ValueError: If the matrix is not square, is empty, or holds a non-finite value.
    """
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        raise ValueError(f"diagonal dominance needs a non-empty square matrix, got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(
            "diagonal dominance needs finite values, got NaN or infinity; drop or recompute the "
            "failed cells first"
        )
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    if lower_is_better:
        centred = -centred
    wins = 0
    for i, row in enumerate(centred):
        others = np.delete(row, i)
        wins += bool(np.all(row[i] > others))
    return wins / len(matrix)


def persona_matrix(
    labels: Sequence[str],
    values: np.ndarray | Sequence[Sequence[float]],
    lower_is_better: bool,
) -> Matrix:
    """Package a persona x persona matrix with its diagonal dominance.

    Args:
        labels: The personas, naming both the rows (variants) and the columns (data) in order.
        values: The square matrix, one row and one column per label.
        lower_is_better: True for perplexities, False for log-likelihoods.

    Returns:
        The `Matrix` record.

    Raises:
        ValueError: If the matrix shape does not match the labels (see also
            `diagonal_dominance`).
    """
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(
            f"the matrix must be {len(labels)}x{len(labels)} for labels {list(labels)}, got "
            f"shape {matrix.shape}"
        )
    return Matrix(
        labels=list(labels),
        values=matrix.tolist(),
        diagonal_dominance=diagonal_dominance(matrix, lower_is_better),
        lower_is_better=lower_is_better,
    )


def stance_metrics(
    prefs: Mapping[tuple[str, str], float],
    stances: Mapping[tuple[str, str], str],
    claims: Mapping[tuple[str, str], str],
    seed: int = 0,
) -> Stance:
    """Whether each variant prefers its persona's side, and whether disagreeing personas diverge.

    Args:
        prefs: By (persona, position_id): the persona's variant's preference for the claim over
            its counterclaim (> 0 prefers the claim; e.g. a difference of length-normalised
            log-likelihoods). Every key is a scored position.
        stances: By the same keys: the persona's contract stance on the claim, `agree` or
            `disagree`.
        claims: By the same keys: the claim text. Positions whose claim (whitespace stripped)
            is the same are the same question; keys missing here take no part in divergence.
        seed: The seed of the accuracy's bootstrap interval.

    Returns:
        accuracy: the share of positions where (pref > 0) matches (stance == "agree"); a pref of
            exactly 0 counts as wrong; None without positions. Its 95 % bootstrap interval
            resamples the positions.
        divergence: over every pair of positions from two personas with the same claim and
            opposite stances, the share whose prefs have opposite signs (both non-zero); None
            when there is no such pair.

    Raises:
        ValueError: If a scored position has no stance or a stance other than agree/disagree.
    """
    for key in prefs:
        if stances.get(key) not in STANCES:
            raise ValueError(
                f"stance for persona {key[0]!r}, position {key[1]!r} must be one of {STANCES}, "
                f"got {stances.get(key)!r}; fix the persona's contract"
            )
    correct = [(pref > 0) == (stances[key] == "agree") for key, pref in prefs.items()]
    by_claim: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key in prefs:
        if key in claims:
            by_claim[claims[key].strip()].append(key)
    diverged = []
    for keys in by_claim.values():
        for a, b in combinations(keys, 2):
            if a[0] != b[0] and stances[a] != stances[b]:
                diverged.append(prefs[a] * prefs[b] < 0)
    return Stance(
        accuracy=sum(correct) / len(correct) if correct else None,
        positions=len(prefs),
        accuracy_interval=bootstrap_interval([float(c) for c in correct], list(prefs), seed=seed),
        divergence=sum(diverged) / len(diverged) if diverged else None,
    )
