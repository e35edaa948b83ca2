"""Persona drift and convergence over a debate, read on the persona vectors (`foundry monitor`'s
computation), when every debater has one.

Each turn is projected on every debater's vector and normalised by where that persona's own and
the others' validation texts fall (`baselines`: 1 reads like the persona's own texts, 0 like the
others'); `monitor_transcript` then flags drift (a speaker below 0.5 on its own vector for two
turns in a row) and convergence (two speakers' separation falling). Entry point:
`vector_monitoring(config, transcripts)` -> `VectorMonitoring`, or None without vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel

from foundry.config import FoundryConfig
from foundry.debate.transcript import TurnRecord
from foundry.logs import get_logger

logger = get_logger(__name__)


class VectorMonitoring(BaseModel):
    own_score: list[float | None]  # per round: mean normalised score on the speaker's own vector
    drift_flags: int
    convergence_flags: int
    transcripts: int


def vector_monitoring(
    config: FoundryConfig, transcripts: Mapping[str, Sequence[TurnRecord]]
) -> VectorMonitoring | None:
    """The monitor's reading of every transcript, or None when a debater has no persona vector
    (`foundry vectors extract` makes them)."""
    from foundry.steering.inputs import read_steering_corpus
    from foundry.steering.monitoring import monitor_transcript
    from foundry.steering.projections import baselines, projection_matrix
    from foundry.steering.store import load_steer_vectors
    from foundry.steering.transcripts import Turn
    from foundry.training.base_model import load_base

    speakers = sorted({t.speaker for records in transcripts.values() for t in records})
    missing = [s for s in speakers if not (config.vector_dir(s) / "vector.json").is_file()]
    if not speakers or missing:
        logger.info("no persona vector for %s: drift is not read", ", ".join(missing) or "-")
        return None
    base = load_base(config)
    hidden = int(base.model.config.hidden_size)
    folders = {slug: config.vector_dir(slug) for slug in speakers}
    vectors = load_steer_vectors(folders, base.identity, hidden)
    held = read_steering_corpus(config).validation
    matrix = projection_matrix(base.model, base.tokenizer, {s: held[s] for s in speakers}, vectors)
    calibration = baselines(matrix)
    by_round: dict[int, list[float]] = {}
    drift = convergence = 0
    for records in transcripts.values():
        turns = [Turn(i, r.speaker, r.text, r.prompt) for i, r in enumerate(records)]
        report = monitor_transcript(base.model, base.tokenizer, turns, vectors, calibration)
        drift += sum(f.kind == "drift" for f in report.flags)
        convergence += sum(f.kind == "convergence" for f in report.flags)
        for record, row in zip(records, report.turns, strict=True):
            if row["own"] is not None:
                by_round.setdefault(record.round, []).append(float(row["own"]))
    rounds = max(by_round, default=0)
    return VectorMonitoring(
        own_score=[
            round(float(np.mean(by_round[r])), 4) if by_round.get(r) else None
            for r in range(1, rounds + 1)
        ],
        drift_flags=drift,
        convergence_flags=convergence,
        transcripts=len(transcripts),
    )
