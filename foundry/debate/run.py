"""Debates from the command line or a flow: what is debated, by whom, through what, and measured.

`debate_specs(...)` turns a question, conflict ids or a topics/conflicts file into `DebateSpec`s;
`open_speakers(...)` loads what each variant speaks through (in-process: the base once, with every
adapter the variants need); `debate_variant(...)` runs one variant's debates, writes their
transcripts and measures them; `DebateRun` holds what the CLI prints and the flow publishes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from foundry.config import FoundryConfig
from foundry.data.conflicts import load_conflicts
from foundry.data.personas import discover_personas, load_topics
from foundry.data.schemas import Conflict, PersonaContract
from foundry.data.validation import validate_personas
from foundry.debate.config import DebateConfig
from foundry.debate.engine import OnRound, run_debates
from foundry.debate.measures import DebateMeasures, measure_debates
from foundry.debate.speakers import InProcessSpeaker, Speaker
from foundry.debate.transcript import (
    DebateError,
    DebateSpec,
    TurnRecord,
    transcript_path,
    write_transcript,
)
from foundry.debate.vector_monitoring import vector_monitoring
from foundry.evaluation.answers import trained_texts
from foundry.evaluation.embeddings import embed_texts
from foundry.evaluation.memorisation import training_indexes
from foundry.steering.variants import resolve_variant
from foundry.training.generation import GenerationParams
from foundry.training.scoring import ScoreRow, score_completions


@dataclass
class DebateProject:
    """What every variant's debates share: the contracts, conflicts and training texts."""

    config: FoundryConfig
    contracts: dict[str, PersonaContract]
    conflicts: dict[str, Conflict]
    training: dict[str, Any] = field(default_factory=dict)  # slug -> TrainingTextIndex

    @classmethod
    def load(cls, config: FoundryConfig) -> DebateProject:
        summary = validate_personas(config)
        contracts = {p.slug: p.contract for p in summary.personas if p.contract is not None}
        if len(contracts) < 2:
            raise DebateError(
                f"a debate needs two personas with a contract; {config.personas_dir} has "
                f"{len(contracts)}: run `foundry init` or `foundry import faultline DIR`"
            )
        texts = {p.slug: trained_texts(config, p, summary.topic_split) for p in summary.personas}
        return cls(
            config=config,
            contracts=contracts,  # type: ignore[arg-type]
            conflicts={c.id: c for c in summary.conflicts},
            training=training_indexes(texts),
        )


def debate_specs(
    project: DebateProject,
    question: str | None = None,
    conflict_ids: Sequence[str] = (),
    topics_file: Path | None = None,
    personas: Sequence[str] = (),
) -> list[DebateSpec]:
    """The debates asked for: one question, conflicts by id (`all`: every one), or a file of
    topics (`topics:`) or conflicts (`conflicts:`). `personas` narrows who debates.

    Raises:
        DebateError: nothing or two things asked, an unknown persona or conflict, a bad file.
    """
    asked = sum((question is not None, bool(conflict_ids), topics_file is not None))
    if asked != 1:
        raise DebateError("give exactly one of: a QUESTION, --conflict ID, or --topics FILE")
    unknown = [p for p in personas if p not in project.contracts]
    if unknown:
        known = ", ".join(sorted(project.contracts))
        raise DebateError(f"unknown persona(s) {', '.join(unknown)}; known: {known}")
    everyone = list(personas) or sorted(project.contracts)
    if question is not None:
        return [DebateSpec.for_question(question, _at_least_two(everyone))]
    if conflict_ids:
        return _conflict_specs(project, conflict_ids, personas)
    return _file_specs(project, topics_file, everyone)  # type: ignore[arg-type]


def _conflict_specs(
    project: DebateProject, ids: Sequence[str], personas: Sequence[str]
) -> list[DebateSpec]:
    if list(ids) == ["all"]:
        ids = list(project.conflicts)
    missing = [i for i in ids if i not in project.conflicts]
    if missing:
        known = ", ".join(project.conflicts) or "none"
        raise DebateError(
            f"unknown conflict(s) {', '.join(missing)} in {project.config.conflicts_file}; "
            f"known: {known}"
        )
    specs = [DebateSpec.for_conflict(project.conflicts[i]) for i in ids]
    if personas:
        specs = [s for s in specs if set(s.personas) <= set(personas)]
    if not specs:
        raise DebateError("no conflict is between the personas given with --persona")
    return specs


def _file_specs(project: DebateProject, path: Path, everyone: list[str]) -> list[DebateSpec]:
    if not path.is_file():
        raise DebateError(f"topics file {path} not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if isinstance(raw, dict) and "conflicts" in raw:
        available = discover_personas(project.config.personas_dir)
        conflicts, problems = load_conflicts(path, available)
        errors = [str(p) for p in problems if p.level == "error"]
        if errors:
            raise DebateError("\n".join(errors))
        return [
            DebateSpec.for_conflict(c)
            for c in conflicts
            if {c.persona_a, c.persona_b} <= set(project.contracts)
        ]
    topics, problems = load_topics(path)
    errors = [str(p) for p in problems if p.level == "error"]
    if errors or not topics:
        raise DebateError("\n".join(errors) or f"{path}: no topics (`topics:` or `conflicts:`)")
    return [DebateSpec.for_question(t.prompt, _at_least_two(everyone)) for t in topics]


def _at_least_two(personas: list[str]) -> list[str]:
    if len(personas) < 2:
        raise DebateError("a debate needs two personas or more; repeat --persona")
    return personas


@dataclass
class InProcessModel:
    """The base loaded once with every adapter and vector the compared variants need."""

    model: Any
    tokenizer: Any
    variants: dict[str, dict[str, Any]]  # variant -> slug -> ResolvedVariant

    @classmethod
    def load(cls, project: DebateProject, specs: Sequence[DebateSpec], variants: Sequence[str]):
        from foundry.training.generation import load_for_generation

        slugs = sorted({s for spec in specs for s in spec.personas})
        resolved = {
            v: {s: resolve_variant(project.config, project.contracts[s], v) for s in slugs}
            for v in variants
        }
        adapters = {r.adapter: r.path for by in resolved.values() for r in by.values() if r.path}
        steered = [r for by in resolved.values() for r in by.values() if r.steer]
        model, tokenizer = load_for_generation(project.config, adapters, steered)
        return cls(model, tokenizer, resolved)

    def speaker(self, variant: str, settings: DebateConfig) -> InProcessSpeaker:
        params = GenerationParams(
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            seed=settings.seed,
            batch_size=settings.batch_size,
        )
        return InProcessSpeaker(self.model, self.tokenizer, self.variants[variant], params)

    def scorer(self, batch_size: int) -> Callable[[list[ScoreRow]], list[tuple[float, int]]]:
        def score(rows: list[ScoreRow]) -> list[tuple[float, int]]:
            found = score_completions(self.model, self.tokenizer, rows, batch_size=batch_size)
            return [(s.nll, s.tokens) for s in found]

        return score


def debate_variant(
    project: DebateProject,
    specs: Sequence[DebateSpec],
    speaker: Speaker,
    settings: DebateConfig,
    variant: str,
    out_dir: Path,
    scorer: Callable[[list[ScoreRow]], list[tuple[float, int]]] | None = None,
    on_round: OnRound | None = None,
) -> tuple[dict[str, list[TurnRecord]], DebateMeasures, list[Path]]:
    """Run one variant's debates, write a transcript per debate, and measure them."""
    transcripts = run_debates(specs, project.contracts, speaker, settings, variant, on_round)
    paths = []
    for debate_id, records in transcripts.items():
        path = transcript_path(out_dir, debate_id, variant)
        write_transcript(path, records)
        paths.append(path)

    def embed(texts: list[str]):
        return embed_texts(texts, settings.embeddings)

    measures = measure_debates(
        transcripts,
        project.conflicts,
        project.contracts,
        embed,
        project.training,
        project.config.evaluation.copy_run_words,
        scorer=scorer,
        seed=settings.seed,
    )
    measures.vectors = vector_monitoring(project.config, transcripts)
    return transcripts, measures, paths
