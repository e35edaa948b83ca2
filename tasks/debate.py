"""Prefect tasks of the `debate` flow: open the debates, run one variant's, publish the comparison.

Public entry points: `open_debates_task` (check what was asked, load the project, the debates and,
in-process, the base with every variant's adapters once), `debate_variant_task` (one variant's
debates, all of them as one batch per round) and `publish_debates_task` (table, measures and plot
beside the transcripts, the `debate-comparison` and `debate-homogeneity` artifacts, and one MLflow
run). The debates themselves are `foundry.debate.session`; the MLflow logging is
`registry.tracking.log_debate_run`.

The tasks pass the session (a loaded model among it) in memory, so none of them is cached or
persists its result: `cache_policy=NONE` also keeps Prefect from hashing the model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from foundry.config import load_config
from foundry.debate.measures import DebateMeasures
from foundry.debate.report import flat_intervals, flat_measures
from foundry.debate.session import DebateSession, open_session, write_outputs
from registry.tracking import log_debate_run

IN_MEMORY = {"cache_policy": NONE, "persist_result": False}


@task(name="open-debates", **IN_MEMORY)
def open_debates_task(
    config_path: str | None,
    conflicts: list[str],
    topics_file: str | None,
    personas: list[str],
    variants: list[str],
    rounds: int | None,
    target: str | None,
    adapters_dir: str | None = None,
) -> DebateSession:
    """Check the asked debates and load what the variants speak through; the output folder is
    `debate.out_dir/<flow run id>`. `adapters_dir` speaks through the adapters there (the
    champions) instead of the ones trained last."""
    from prefect.runtime import flow_run

    config = load_config(Path(config_path) if config_path else None)
    if adapters_dir:
        config = config.with_adapters_dir(Path(adapters_dir))
    run_name = flow_run.id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = config.resolve(Path(config.debate.out_dir)) / run_name
    return open_session(
        config, folder, conflicts, Path(topics_file) if topics_file else None, personas,
        variants, rounds, target,
    )  # fmt: skip


@task(name="debate-variant", task_run_name="debate[{variant}]", **IN_MEMORY)
def debate_variant_task(session: DebateSession, variant: str) -> DebateMeasures:
    """Run one variant's debates (every debate's round in one call to the speaker), write their
    transcripts, and measure them."""
    return session.debate(variant)


@task(name="publish-debates", **IN_MEMORY)
def publish_debates_task(session: DebateSession, measures: list[DebateMeasures]) -> dict[str, Any]:
    """Write the table, measures and plot beside the transcripts, publish the table and the plot
    as artifacts, and log the metrics and files to one MLflow run (`kind=debate`)."""
    from prefect.artifacts import create_image_artifact, create_markdown_artifact
    from prefect.runtime import flow_run

    from foundry.debate.report import comparison_markdown

    paths = write_outputs(session.folder, measures)
    metrics = flat_measures(measures)
    params = {
        **session.settings.model_dump(mode="json", exclude={"variant"}),
        "variants": ",".join(session.variants),
        "debates": len(session.specs),
        "personas": ",".join(session.personas),
    }
    run_id = log_debate_run(
        session.project.config, metrics, flat_intervals(measures), params, list(paths.values()),
        flow_run.id or "",
    )  # fmt: skip
    header = (
        f"# Debates: {len(session.specs)} x {session.settings.rounds} round(s)\n\n"
        f"Among {', '.join(session.personas)}. Transcripts, table, plot and measures: "
        f"`{session.folder}`; MLflow run `{run_id}`.\n\n"
    )
    create_markdown_artifact(
        key="debate-comparison", markdown=header + comparison_markdown(measures)
    )
    # A file:// URL: the Prefect UI shows it where the browser may read the project's files.
    create_image_artifact(
        image_url=paths["plot"].resolve().as_uri(),
        key="debate-homogeneity",
        description="Homogeneity by round, one line per variant (lower: more distinct).",
    )
    return {"folder": str(session.folder), "run_id": run_id, "metrics": metrics}
