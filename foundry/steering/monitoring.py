"""Monitoring personas in debate transcripts: score each turn on every persona vector, flag drift.

Entry points: `monitor_transcript` (scores each turn on the calibrated vectors of
`foundry.steering.projections` and applies `flags_from_scores`) and its `MonitorReport`. Callers
load the model; nothing here does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from rich.table import Table

from foundry.steering.hooks import SteerVector
from foundry.steering.projections import Baseline, MonitoringError, project_rows
from foundry.steering.transcripts import Turn, transcript_rows


@dataclass(frozen=True)
class Flag:
    """A speaker out of character (`drift`) or two speakers growing alike (`convergence`)."""

    kind: str  # "drift" | "convergence"
    speaker: str
    turns: list[int]
    message: str
    other: str = ""  # convergence: the second speaker of the pair
    numbers: dict[str, float] = field(default_factory=dict)


def flags_from_scores(
    speakers: Sequence[str],
    scores: Sequence[Mapping[str, float]],
    drift_threshold: float = 0.5,
    converge_drop: float = 0.3,
    window: int = 2,
) -> list[Flag]:
    """Drift and convergence flags from per-turn normalised scores (turn `t`: `speakers[t]`).

    Drift: a speaker's score on its own vector is below `drift_threshold` on at least `window`
    of its consecutive turns; one flag per such run. Convergence, for each pair (A, B) of
    speakers that both have vectors: A's separation on a turn of A is `score[A] - score[B]`
    (B's: `score[B] - score[A]`); its drop is the mean separation of the speaker's first
    `window` turns minus that of its last `window` turns. The pair is flagged when the drop
    exceeds `converge_drop` for each of A and B that has at least `2 * window` turns (and at
    least one does). Speakers without a vector of their own are not checked.
    """
    if window < 1:
        raise MonitoringError(f"window must be at least 1, got {window}")
    order = [s for s in dict.fromkeys(speakers) if all(s in row for row in scores)]
    own_turns = {s: [t for t, who in enumerate(speakers) if who == s] for s in order}
    flags = [
        f for s, ts in own_turns.items() for f in _drift(s, ts, scores, drift_threshold, window)
    ]
    for k, a in enumerate(order):
        for b in order[k + 1 :]:
            flags += _convergence(a, b, own_turns, scores, converge_drop, window)
    return flags


def _drift(
    s: str, turns: list[int], scores: Sequence[Mapping[str, float]], threshold: float, window: int
) -> list[Flag]:
    """One drift flag per run of at least `window` consecutive own turns scoring below threshold."""
    runs: list[list[int]] = [[]]
    for t in turns:
        if scores[t][s] < threshold:
            runs[-1].append(t)
        elif runs[-1]:
            runs.append([])
    flags = []
    for run in (r for r in runs if len(r) >= window):
        shown = ", ".join(f"{t}: {scores[t][s]:.2f}" for t in run)
        message = f"{s} reads below {threshold} on its own vector (turn: score {shown})"
        flags.append(Flag("drift", s, run, message))
    return flags


def _convergence(
    a: str,
    b: str,
    own_turns: Mapping[str, list[int]],
    scores: Sequence[Mapping[str, float]],
    drop: float,
    window: int,
) -> list[Flag]:
    """A convergence flag for the pair when each speaker with enough turns lost separation."""
    numbers: dict[str, float] = {}
    late_turns: list[int] = []
    for s, o in ((a, b), (b, a)):
        turns = own_turns[s]
        if len(turns) >= 2 * window:
            sep = [scores[t][s] - scores[t][o] for t in turns]
            numbers[f"{s} early"] = float(np.mean(sep[:window]))
            numbers[f"{s} late"] = float(np.mean(sep[-window:]))
            late_turns += turns[-window:]
    checked = [s for s in (a, b) if f"{s} early" in numbers]
    if not checked or any(numbers[f"{s} early"] - numbers[f"{s} late"] <= drop for s in checked):
        return []
    said = "; ".join(
        f"{s} {numbers[f'{s} early']:.2f} -> {numbers[f'{s} late']:.2f}" for s in checked
    )
    message = f"{a} and {b} converge: separation fell by over {drop} ({said})"
    return [Flag("convergence", a, sorted(late_turns), message, b, numbers)]


@dataclass
class MonitorReport:
    """Per-turn normalised scores (`index`, `speaker`, `scores`, `own`) and the flags raised."""

    turns: list[dict[str, Any]]
    flags: list[Flag]

    def to_dict(self) -> dict[str, Any]:
        return {"turns": self.turns, "flags": [asdict(f) for f in self.flags]}

    def render_table(self) -> Table:
        """Turn, speaker, own score and one column per vector; flagged cells in red."""
        names = list(self.turns[0]["scores"]) if self.turns else []
        red = {(t, f.speaker) for f in self.flags for t in f.turns}
        red |= {(t, f.other) for f in self.flags if f.other for t in f.turns}
        table = Table(title="Persona monitoring")
        for column in ("turn", "speaker", "own", *names):
            table.add_column(column, justify="left" if column == "speaker" else "right")
        for row in self.turns:
            t, own = row["index"], row["own"]
            own_cell = "-" if own is None else _cell(own, (t, row["speaker"]) in red)
            cells = [_cell(row["scores"][n], (t, n) in red) for n in names]
            table.add_row(str(t), row["speaker"], own_cell, *cells)
        return table


def _cell(value: float, is_flagged: bool) -> str:
    return f"[red]{value:.2f}[/red]" if is_flagged else f"{value:.2f}"


def monitor_transcript(
    model: Any,
    tokenizer: Any,
    turns: Sequence[Turn],
    vectors: Mapping[str, SteerVector],
    baselines: Mapping[str, Baseline],
    drift_threshold: float = 0.5,
    converge_drop: float = 0.3,
    window: int = 2,
) -> MonitorReport:
    """Score every turn on every persona vector (normalised by `baselines`) and flag it.

    Args:
        turns: the transcript (`read_transcript`); each turn is read as a response to its
            prompt, else to the previous turn, else to a generic cue.
        vectors, baselines: persona vectors and their calibration (`baselines(matrix)`).
        drift_threshold, converge_drop, window: see `flags_from_scores`.

    Returns:
        The per-turn scores and the drift and convergence flags.
    """
    missing = [name for name in vectors if name not in baselines]
    if missing:
        raise MonitoringError(
            f"no baseline for vector(s) {', '.join(missing)}; compute them with `baselines` "
            "on validation texts of every persona"
        )
    raw = project_rows(model, tokenizer, transcript_rows(turns), vectors)
    scores = [
        {n: baselines[n].normalise(float(p)) for n, p in zip(vectors, row, strict=True)}
        for row in raw
    ]
    rows = [
        {"index": t.index, "speaker": t.speaker, "scores": s, "own": s.get(t.speaker)}
        for t, s in zip(turns, scores, strict=True)
    ]
    speakers = [t.speaker for t in turns]
    flags = flags_from_scores(speakers, scores, drift_threshold, converge_drop, window)
    return MonitorReport(rows, flags)
