"""Offline sentence embeddings and their TF-IDF fallback (foundry.evaluation.embeddings)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from foundry.evaluation import embeddings
from foundry.evaluation.embeddings import embed_texts

SENTENCES = [
    "The city should build more affordable housing near the train lines.",
    "More low-cost homes ought to be built close to the railway stations.",
    "My cat sleeps on the warm windowsill every afternoon.",
]


def test_minilm_gives_unit_rows_where_a_paraphrase_is_closest():
    vectors, backend = embed_texts(SENTENCES, backend="minilm")
    assert backend == "minilm"
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embed_texts([], backend="minilm")[0].shape == (0, 384)


def test_tfidf_gives_unit_rows_over_the_texts_vocabulary():
    vectors, backend = embed_texts(SENTENCES + ["", "!!"], backend="tfidf")
    assert backend == "tfidf"
    assert vectors.shape[0] == 5
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-6)
    assert not vectors[3:].any()  # no words, no direction
    assert vectors[0] @ vectors[1] > vectors[1] @ vectors[2]
    assert embed_texts(["", "?"], backend="tfidf")[0].shape == (2, 1)


def test_auto_falls_back_to_tfidf_with_one_warning(monkeypatch, caplog):
    def broken_loader():
        raise OSError("model files missing")

    monkeypatch.setattr(embeddings, "_minilm", None)
    monkeypatch.setattr(embeddings, "_minilm_failure", None)
    monkeypatch.setattr(embeddings, "_load_minilm", broken_loader)
    with caplog.at_level(logging.WARNING, logger="foundry.evaluation.embeddings"):
        first, backend = embed_texts(SENTENCES, backend="auto")
        _, again = embed_texts(SENTENCES, backend="auto")
    assert (backend, again) == ("tfidf", "tfidf")
    np.testing.assert_allclose(first, embed_texts(SENTENCES, backend="tfidf")[0])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "model files missing" in warnings[0].getMessage()
    assert "TF-IDF" in warnings[0].getMessage()


def test_auto_uses_minilm_when_it_loads():
    _, backend = embed_texts(SENTENCES[:1], backend="auto")
    assert backend == "minilm"


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="`backend` must be one of"):
        embed_texts(SENTENCES, backend="bert")
