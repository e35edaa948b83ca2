"""The `debate` flow: multi-round debates among the personas through each variant, the comparison
published as Prefect artifacts and logged to MLflow (weekly, by schedule: the champions on every
held-out conflict, prompt-only against DPO).

One task per variant, not per debate: in-process, a round of every debate goes to the model as
one mixed-adapter batch (`foundry.debate.engine`), which per-debate tasks would split into many
small batches, each paying a forward pass per token for a handful of rows. The variants run one
after another on the model the first task loaded once; a variant's task is retried when a served
target failed transiently (`orchestration.retries`), and only then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.evaluate import fetch_champions_task
from foundry.config import load_config
from foundry.debate.config import DebateTarget, DebateVariant
from foundry.debate.transcript import DebateError
from foundry.logs import get_logger, prefect_logs
from foundry.orchestration.retries import served_retry_options
from tasks.debate import debate_variant_task, open_debates_task, publish_debates_task

logger = get_logger(__name__)

DEFAULT_VARIANTS: list[DebateVariant] = ["prompt", "dpo"]


@flow(name="debate")
def debate_flow(
    config_path: str | None = None,
    conflicts: list[str] | None = None,
    topics_file: str | None = None,
    personas: list[str] | None = None,
    variants: list[DebateVariant] | None = None,
    rounds: int | None = None,
    target: DebateTarget | None = None,
    champions: bool = False,
) -> dict[str, Any]:
    """Debate, measure and compare the variants; returns `{"folder", "run_id", "metrics":
    {"debate.<variant>.<measure>": value}}`.

    Args:
        config_path: `foundry.yaml` to use (default: the one in the working directory).
        conflicts: conflict ids of `data/conflicts.yaml`, or `["all"]` (the default without
            `topics_file`): every conflict, all of them held out from training.
        topics_file: a file of topics (`topics:`) or conflicts (`conflicts:`) to debate instead.
        personas: who debates (default: each conflict's two, or everyone on a topic).
        variants: compared on the same debates and seeds (default `["prompt", "dpo"]`).
        rounds: rounds per debate (default `debate.rounds`).
        target: `in-process` or a served target (default `debate.target`).
        champions: debate the registered champions (fetched as the evaluation fetches them)
            instead of the adapters trained last; in-process only, as a served target serves
            what was deployed.

    Raises:
        DebateError: nothing to debate, an unknown persona or conflict, or no champion.
    """
    with prefect_logs():
        config = load_config(Path(config_path) if config_path else None)
        if conflicts is None:
            conflicts = [] if topics_file else ["all"]
        adapters_dir = None
        if champions and (target or config.debate.target) != "in-process":
            logger.warning(
                "champions=True is ignored on a served target: it serves what was deployed "
                "(`foundry deploy`); leave `champions` off to silence this"
            )
        elif champions:
            fetched = fetch_champions_task(config_path, personas)
            if not fetched["versions"]:
                raise DebateError("no persona has a champion to debate; run `foundry run` first")
            personas, adapters_dir = list(fetched["versions"]), fetched["folder"]
        chosen = list(variants or DEFAULT_VARIANTS)
        session = open_debates_task(
            config_path, conflicts, topics_file, personas or [], chosen, rounds, target,
            adapters_dir,
        )  # fmt: skip
        debate = debate_variant_task.with_options(**served_retry_options(config))
        measures = [debate(session, variant) for variant in chosen]
        return publish_debates_task(session, measures)
