"""Who wrote this? A TF-IDF classifier trained on the personas' real train splits.

Used to check that an adapter's generations read as its persona (chance is 1 / personas). It sees
word and character n-grams, so it measures voice and vocabulary together; the evaluation stage
separates style from content and adds stance measures that look past both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class AttributionClassifier:
    pipeline: Any
    labels: list[str]

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(label) for label in self.pipeline.predict(list(texts))]

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Each text's probability per persona (the pipeline's `predict_proba` by `classes_`).

        Args:
            texts: The texts to attribute.

        Returns:
            One `{persona: probability}` dict per text, summing to 1.
        """
        if not texts:
            return []  # scikit-learn rejects an empty batch
        classes = [str(label) for label in self.pipeline.classes_]
        rows = self.pipeline.predict_proba(list(texts))
        return [dict(zip(classes, map(float, row), strict=True)) for row in rows]


def fit_attribution(
    texts: Sequence[str], personas: Sequence[str], seed: int = 0
) -> AttributionClassifier:
    """Fit word (1-2) and character (2-5) n-gram TF-IDF features with a logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    model = LogisticRegression(max_iter=2000, C=10.0, random_state=seed)
    pipeline = make_pipeline(features, model).fit(list(texts), list(personas))
    return AttributionClassifier(pipeline=pipeline, labels=sorted(set(personas)))


def own_share(classifier: AttributionClassifier, texts: Sequence[str], persona: str) -> float:
    """Share of `texts` the classifier attributes to `persona`."""
    predicted = classifier.predict(texts)
    return sum(p == persona for p in predicted) / max(1, len(predicted))


def largest_share(classifier: AttributionClassifier, texts: Sequence[str]) -> tuple[str, float]:
    """The persona most often predicted for `texts`, and its share (a base model's bias)."""
    counts = Counter(classifier.predict(texts))
    persona, count = counts.most_common(1)[0]
    return persona, count / max(1, len(texts))
