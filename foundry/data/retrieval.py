"""Retrieve a persona's own passages for a debate prompt, to ground synthetic turns.

`PassageIndex` is built once per persona from its corpus items (TF-IDF over word 1-2 grams with
sublinear tf and English stop words removed); `PassageIndex.top` returns the items most similar to
a query by cosine similarity. Ties go by item id, and items that share nothing with the query come
in an order seeded from the query's hash, so two unrelated prompts still get different passages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from foundry.data.schemas import CorpusItem


class PassageIndex:
    """A TF-IDF index over one persona's corpus items.

    Args:
        items: The items to search (typically the persona's train split).

    Raises:
        ValueError: when `items` is empty.
    """

    def __init__(self, items: Sequence[CorpusItem]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not items:
            raise ValueError("a PassageIndex needs at least one corpus item, got none")
        self.items = list(items)
        self._vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, stop_words="english"
        )
        try:
            self._matrix = self._vectorizer.fit_transform([item.text for item in self.items])
        except ValueError:
            # Only stop words in the whole corpus: nothing to score, so every query falls back to
            # the query-seeded order below.
            self._matrix = None

    def top(self, query: str, k: int) -> list[CorpusItem]:
        """The `k` items most similar to `query` (all items when `k` exceeds the corpus).

        Args:
            query: The text to match, usually a debate prompt.
            k: How many items to return.

        Returns:
            Items by descending cosine similarity, ties by item id; items with no shared term
            follow in a stable order seeded from the query's hash.
        """
        scores = [0.0] * len(self.items)
        if self._matrix is not None:
            # Rows are L2-normalised by TfidfVectorizer, so the dot product is the cosine.
            query_vector = self._vectorizer.transform([query])
            scores = (self._matrix @ query_vector.T).toarray().ravel().tolist()
        order = sorted(
            range(len(self.items)),
            key=lambda i: (-scores[i], self._tie_key(query, i, scores[i] > 0)),
        )
        return [self.items[i] for i in order[: max(0, k)]]

    def _tie_key(self, query: str, i: int, is_match: bool) -> str:
        item_id = self.items[i].id
        if is_match:
            return item_id
        return hashlib.sha256(f"{query}\x1f{item_id}".encode()).hexdigest()
