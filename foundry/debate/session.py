"""One debate run as the `debate` flow carries it from task to task: the project, the debates, the
settings, the variants, the output folder and, in-process, the model loaded once.

`open_session(config, folder, ...)` checks what was asked (settings, variants, debates) and loads
what every variant speaks through; `session.debate(variant)` runs that variant's debates (each
round of every debate is one call to the speaker: in-process, one mixed-adapter batch), writes
their transcripts and returns the measures; `write_outputs(folder, measures)` writes the table,
the measures and the plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.debate.config import DebateConfig, DebateVariant
from foundry.debate.engine import OnRound
from foundry.debate.measures import DebateMeasures
from foundry.debate.report import comparison_markdown, write_homogeneity_plot
from foundry.debate.run import DebateProject, InProcessModel, debate_specs, debate_variant
from foundry.debate.targets import served_speaker
from foundry.debate.transcript import DebateError, DebateSpec
from foundry.logs import get_logger

logger = get_logger(__name__)


@dataclass
class DebateSession:
    """Everything the variants' debates share; `local` is the in-process model (None when
    served)."""

    project: DebateProject
    specs: list[DebateSpec]
    settings: DebateConfig
    variants: list[str]
    folder: Path
    local: InProcessModel | None = None
    base_url: str | None = None  # a served target's URL (default: its configured one)

    @property
    def personas(self) -> list[str]:
        return sorted({s for spec in self.specs for s in spec.personas})

    def debate(self, variant: str, on_round: OnRound | None = None) -> DebateMeasures:
        """Run `variant`'s debates, write a transcript per debate, and measure them;
        `on_round(r, records)` sees each round's turns as they come."""
        if self.local is not None:
            speaker = self.local.speaker(variant, self.settings)
            scorer = self.local.scorer(self.settings.batch_size)
        else:
            speaker = served_speaker(
                self.project.config, self.project.contracts, self.personas, variant,
                self.settings.target, self.settings, self.base_url,
            )  # fmt: skip
            scorer = None
        _, measures, paths = debate_variant(
            self.project, self.specs, speaker, self.settings, variant, self.folder, scorer,
            on_round,
        )  # fmt: skip
        logger.info("%s: %d transcript(s) in %s", variant, len(paths), self.folder)
        return measures


def open_session(
    config: FoundryConfig,
    folder: Path,
    conflicts: Sequence[str] = (),
    topics_file: Path | None = None,
    personas: Sequence[str] = (),
    variants: Sequence[str] = ("prompt", "dpo"),
    rounds: int | None = None,
    target: str | None = None,
    question: str | None = None,
    overrides: dict[str, object] | None = None,
    base_url: str | None = None,
) -> DebateSession:
    """Check the asked debates and load what the variants speak through.

    Args:
        config: the project config (its `debate:` section gives the defaults).
        folder: where transcripts, table, plot and measures go.
        conflicts: conflict ids of `data/conflicts.yaml` (`["all"]`: every one), or empty with
            `topics_file`.
        topics_file: a file of topics (`topics:`) or conflicts (`conflicts:`).
        personas: who debates (default: each conflict's two, or everyone).
        variants: the variants compared on the same debates and seeds.
        rounds: rounds per debate (default `debate.rounds`).
        target: `in-process` or a served target (default `debate.target`).
        question: one question debated instead of conflicts or a topics file.
        overrides: other `debate:` settings for this run (`seed`, `critique`, ...).
        base_url: a served target's URL (default: the configured one).

    Raises:
        DebateError: an unknown variant, persona or conflict, or no debate asked.
        pydantic.ValidationError: `rounds` or `target` out of range, naming the field.
    """
    updates = {"rounds": rounds, "target": target, **(overrides or {})}
    settings = DebateConfig.model_validate(
        config.debate.model_dump() | {k: v for k, v in updates.items() if v is not None}
    )
    known = get_args(DebateVariant)
    unknown = [v for v in variants if v not in known]
    if unknown or not variants:
        raise DebateError(
            f"`variants` must name one or more of {', '.join(known)}, got {list(variants)}"
        )
    project = DebateProject.load(config)
    specs = debate_specs(project, question, conflicts, topics_file, personas)
    logger.info(
        "%d debate(s) among %d persona(s): %d round(s), variant(s) %s, target %s",
        len(specs), len({s for spec in specs for s in spec.personas}), settings.rounds,
        ", ".join(variants), settings.target,
    )  # fmt: skip
    local = None
    if settings.target == "in-process":
        local = InProcessModel.load(project, specs, variants)
    return DebateSession(project, specs, settings, list(variants), folder, local, base_url)


def write_outputs(folder: Path, measures: Sequence[DebateMeasures]) -> dict[str, Path]:
    """The comparison table, the measures (JSON) and the homogeneity plot, beside the
    transcripts; returns their paths by name."""
    paths = {
        "comparison": folder / "comparison.md",
        "measures": folder / "measures.json",
        "plot": folder / "homogeneity.png",
    }
    write_text_atomic(paths["comparison"], comparison_markdown(measures))
    write_text_atomic(
        paths["measures"],
        "[\n" + ",\n".join(m.model_dump_json(indent=2) for m in measures) + "\n]\n",
    )
    write_homogeneity_plot(measures, paths["plot"])
    return paths
