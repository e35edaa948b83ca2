"""Log-likelihood scoring in cached batches: what evaluation builds fluency, perplexity, stance and
belief on.

`score_batches(load, batches, cache)` scores batches the caller forms itself (a row's numbers
depend on its batch), each reused from the `EvalCache` when its key is stored; the model is loaded
only when a batch is missing. The scoring itself is `foundry.training.scoring.score_completions`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from foundry.data.framing import MAX_SCORED_TOKENS
from foundry.evaluation.cache import BatchJob, EvalCache
from foundry.training.scoring import Score, ScoreRow, score_completions


def score_batches(
    load: Callable[[], tuple[Any, Any]],
    batches: Sequence[tuple[str | None, Sequence[ScoreRow]]],
    cache: EvalCache,
    max_completion: int = MAX_SCORED_TOKENS,
    hook: Callable[[int], None] | None = None,
) -> list[Score]:
    """The completion NLL of every row of every batch, in order; one forward pass per batch.

    Args:
        load: returns (model, tokenizer); called only when a batch is not cached.
        batches: (the persona the batch involves or None, its rows), formed by the caller the
            same way whether or not anything is cached (a row's numbers depend on its batch).
        cache: where finished batches are kept and found.
        max_completion: as in `score_completions`.
        hook: called with each batch's row count once it is done.

    Returns:
        One `Score` per row.
    """
    jobs = []
    for owner, batch in batches:
        rows = [
            [cache.adapter_id(r.adapter), r.system, r.prompt, r.completion]
            + ([cache.steer_id(r.steer)] if r.steer else [])
            for r in batch
        ]
        key = cache.key("scores", {"max_completion": max_completion, "rows": rows})
        jobs.append(BatchJob(key, owner, len(batch), _scorer(load, batch, max_completion)))
    values = cache.run("scores", jobs, hook)
    return [Score(float(nll), int(tokens)) for value in values for nll, tokens in value]


def _scorer(
    load: Callable[[], tuple[Any, Any]], batch: Sequence[ScoreRow], max_completion: int
) -> Callable[[], Any]:
    def compute() -> list[list[float]]:
        model, tokenizer = load()
        scores = score_completions(model, tokenizer, batch, len(batch), max_completion)
        return [[s.nll, s.tokens] for s in scores]

    return compute
