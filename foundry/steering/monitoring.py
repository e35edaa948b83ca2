"""Monitoring personas: project text activations onto persona vectors, flag drift in transcripts.

A text's reading on a vector is its mean response-token activation at the vector's layer, dotted
with the unit direction. Raw projections share no scale, so `baselines` calibrates each vector on
held-out texts (1 = reads like its persona's own texts, 0 = like the others'). Entry points:
`project_rows`, `projection_matrix`, `baselines`, `read_transcript`, `monitor_transcript` (which
scores each turn and applies `flags_from_scores`). Callers load the model; nothing here does."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from foundry.errors import FoundryError
from foundry.steering.activations import ResponseRow, response_activations
from foundry.steering.hooks import SteerVector

DEFAULT_PROMPT = "Continue the debate."


class MonitoringError(FoundryError):
    """Texts, vectors or a transcript cannot be monitored as given."""


def project_rows(
    model: Any, tokenizer: Any, rows: Sequence[ResponseRow], vectors: Mapping[str, SteerVector]
) -> np.ndarray:
    """Each row's projection on each vector's unit direction, `(len(rows), len(vectors))`."""
    units = []
    for name, v in vectors.items():
        if v.norm == 0.0:
            raise MonitoringError(f"persona vector {name!r} is zero: it has no direction")
        units.append((v.layer, np.asarray(v.vector, dtype=np.float32) / v.norm))
    if not rows:
        return np.zeros((0, len(units)), dtype=np.float32)
    acts = response_activations(model, tokenizer, rows)
    columns = [acts[:, layer - 1] @ unit for layer, unit in units]
    return np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0), np.float32)


@dataclass
class ProjectionMatrix:
    """Mean projection of each owner's texts (rows) on each persona vector (columns)."""

    rows: list[str]
    columns: list[str]
    values: np.ndarray  # (len(rows), len(columns))

    def diagonal_dominance(self) -> float:
        """Share of rows that read highest on their own vector, once the vectors share a scale.

        Each column is z-scored across rows (raw projections on different vectors are not
        comparable); a row counts when its own column (the one with the same name) is strictly
        larger than every other entry of that row. Rows without a same-named column are left out.
        """
        std = self.values.std(axis=0)
        z = (self.values - self.values.mean(axis=0)) / np.where(std > 0, std, 1.0)
        owned = [(i, self.columns.index(r)) for i, r in enumerate(self.rows) if r in self.columns]
        if not owned:
            raise MonitoringError("no text owner has a vector of the same name")
        wins = sum(bool((z[i, j] > np.delete(z[i], j)).all()) for i, j in owned)
        return wins / len(owned)

    def to_dict(self) -> dict[str, Any]:
        """Rows, columns, values as nested lists (`values[row][column]`) and the dominance."""
        values = self.values.astype(float).tolist()
        return {
            "rows": self.rows,
            "columns": self.columns,
            "values": values,
            "diagonal_dominance": self.diagonal_dominance(),
        }


def projection_matrix(
    model: Any,
    tokenizer: Any,
    texts: Mapping[str, Sequence[ResponseRow]],
    vectors: Mapping[str, SteerVector],
) -> ProjectionMatrix:
    """Mean projection of each owner's texts on each vector (one activation pass for all)."""
    empty = [owner for owner, rows in texts.items() if not rows]
    if empty:
        raise MonitoringError(f"no texts for {', '.join(empty)}; give each owner at least one")
    flat = [row for rows in texts.values() for row in rows]
    raw = project_rows(model, tokenizer, flat, vectors)
    bounds = np.cumsum([0, *(len(rows) for rows in texts.values())])
    means = [raw[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return ProjectionMatrix(list(texts), list(vectors), np.stack(means).reshape(len(texts), -1))


@dataclass(frozen=True)
class Baseline:
    """Where one persona vector puts its owner's held-out texts (`own`) and everyone else's."""

    own: float
    rest: float

    def normalise(self, projection: float) -> float:
        """1 = reads like the owner's own texts, 0 = like the others'."""
        return (projection - self.rest) / (self.own - self.rest)


def baselines(matrix: ProjectionMatrix) -> dict[str, Baseline]:
    """Per vector, the mean projection of its owner's texts and of the other owners' texts.

    Raises:
        MonitoringError: a vector has no same-named owner or no other owner, or does not
            separate its owner's texts from the rest (own == rest).
    """
    out: dict[str, Baseline] = {}
    for j, name in enumerate(matrix.columns):
        if name not in matrix.rows or len(matrix.rows) < 2:
            raise MonitoringError(
                f"vector {name!r} needs held-out texts of {name!r} and of at least one other "
                f"persona (text owners: {', '.join(matrix.rows)})"
            )
        i = matrix.rows.index(name)
        own = float(matrix.values[i, j])
        rest = float(np.delete(matrix.values[:, j], i).mean())
        if abs(own - rest) <= 1e-9 * max(1.0, abs(own), abs(rest)):
            raise MonitoringError(
                f"vector {name!r} does not separate {name!r}'s texts from the others' (both "
                f"project to {own:.4g}); extract it again or give more varied held-out texts"
            )
        out[name] = Baseline(own, rest)
    return out


@dataclass(frozen=True)
class Turn:
    """One line of a transcript: who spoke (persona slug), what, and optionally to what."""

    index: int  # 0-based position among the transcript's turns
    speaker: str
    text: str
    prompt: str = ""


def read_transcript(path: Path, known: Collection[str]) -> list[Turn]:
    """Turns of a JSONL transcript: `speaker`/`persona`, `text`/`content`, optional `prompt`.

    Raises:
        MonitoringError: naming the file and line, for bad JSON, a missing or empty field, a
            speaker not in `known`, or a transcript with no turns.
    """
    turns: list[Turn] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"{where}: not valid JSON ({exc.msg}); write one JSON object per line"
            raise MonitoringError(message) from None
        if not isinstance(record, dict):
            raise MonitoringError(f"{where}: expected a JSON object, got {type(record).__name__}")
        speaker = _field(record, ("speaker", "persona"), where)
        text = _field(record, ("text", "content"), where)
        if speaker not in known:
            raise MonitoringError(
                f"{where}: unknown speaker {speaker!r}; known personas: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
        prompt = record.get("prompt") or ""
        if not isinstance(prompt, str):
            raise MonitoringError(f"{where}: `prompt` must be a string, got {prompt!r}")
        turns.append(Turn(len(turns), speaker, text, prompt))
    if not turns:
        raise MonitoringError(f"{path}: the transcript has no turns; add one JSON object per line")
    return turns


def _field(record: dict[str, Any], names: tuple[str, str], where: str) -> str:
    """The first of `names` present in `record`, as a non-empty string."""
    value = next((record[n] for n in names if n in record), None)
    if not isinstance(value, str) or not value.strip():
        raise MonitoringError(
            f"{where}: `{names[0]}` (or `{names[1]}`) must be a non-empty string, got {value!r}"
        )
    return value


def transcript_rows(turns: Sequence[Turn]) -> list[ResponseRow]:
    """Each turn as a response to its prompt, else to the previous turn, else a generic cue."""
    rows = []
    for k, turn in enumerate(turns):
        prompt = turn.prompt or (turns[k - 1].text if k else DEFAULT_PROMPT)
        rows.append(ResponseRow(prompt, turn.text))
    return rows


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
            "on held-out texts of every persona"
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
