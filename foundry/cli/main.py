"""The `foundry` command line: one Typer app assembled from the command modules of `foundry.cli`,
and `main`, the console-script entry point. Each command loads the config, calls one function or
flow, and prints a summary. Errors a user can fix exit with status 1 and a message, no traceback.
"""

from __future__ import annotations

import logging
import os

import typer
from rich.logging import RichHandler

from foundry.cli import data as cli_data
from foundry.cli.common import err_console

app = typer.Typer(
    help="Persona Foundry: per-persona weights and activations for multi-agent debate.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
prompts_app = typer.Typer(
    help="Persona system prompts for prompt-only systems.", no_args_is_help=True
)
app.command(epilog="Example: foundry init")(cli_data.init)
app.command(epilog="Example: foundry validate --persona tobias-renn")(cli_data.validate)
app.add_typer(cli_data.import_app, name="import")
app.add_typer(cli_data.data_app, name="data")
app.add_typer(cli_data.personas_app, name="personas")
app.add_typer(cli_data.config_app, name="config")
app.add_typer(prompts_app, name="prompts")


def main() -> None:
    """Console-script entry point: quiet third-party telemetry, log warnings, run the app."""
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Our own progress bars replace the libraries' tqdm bars and notices.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Commands draw their own progress; Prefect's per-task lines still reach its API and UI.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    app()


def _register_model_commands() -> None:
    from foundry.cli import models as cli_models
    from foundry.cli import run as cli_run
    from foundry.cli import ui as cli_ui

    app.command(
        "run",
        epilog="Example: foundry run   (again: only what changed is redone; --force redoes all)."
        " On a Ray cluster: FOUNDRY_ORCHESTRATION__EXECUTOR=ray foundry run (docs/scale-out.md)",
    )(cli_run.run)
    app.command("ui", epilog="Example: foundry ui   (then: foundry ui --stop)")(cli_ui.ui)
    from foundry.cli.schedule import schedule_app

    app.add_typer(schedule_app, name="schedule")

    app.command(epilog="Example: foundry train --persona tobias-renn --stage all", name="train")(
        cli_models.train
    )
    app.command(
        epilog="Example: foundry generate --persona tobias-renn --variant prompt --variant dpo "
        '"Will AI capex pay off?"',
        name="generate",
    )(cli_models.generate)
    from foundry.cli import synth as cli_synth

    app.command(
        epilog="Example: foundry synth --persona tobias-renn --n 40 --provider offline",
        name="synth",
    )(cli_synth.synth)
    app.command(
        epilog="Example: foundry pairs --persona tobias-renn --export together --out pairs.jsonl",
        name="pairs",
    )(cli_synth.pairs)
    prompts_app.command(
        "export",
        epilog="Example: foundry prompts export --format faultline --out personas.json   "
        "(adapters instead: add --base-url http://127.0.0.1:8000/v1 for `foundry serve`; "
        "markdown: foundry prompts export --out prompts/)",
    )(cli_synth.prompts_export)
    from foundry.cli import eval as cli_eval
    from foundry.cli.registry import registry_app

    app.add_typer(registry_app, name="registry")

    app.command(
        "eval",
        epilog="Example: foundry eval --variant prompt --variant dpo --json metrics.json",
    )(cli_eval.evaluate)
    app.command(
        "compare",
        epilog="Example: foundry compare single/eval experts/eval --label single --label experts "
        "--out docs/experts",
    )(cli_eval.compare)
    from foundry.cli import serve as cli_serve
    from foundry.cli import vectors as cli_vectors

    app.command(
        "serve", epilog="Example: foundry serve --port 8000   (then any OpenAI client, model=SLUG)"
    )(cli_serve.serve)

    app.add_typer(cli_vectors.vectors_app, name="vectors")
    from foundry.cli.deploy import deploy_app

    app.add_typer(deploy_app, name="deploy")
    from foundry.cli import costs as cli_costs

    app.command("costs", epilog="Example: foundry costs --turns 20 --personas 3 --json costs.json")(
        cli_costs.costs
    )
    app.command("monitor", epilog="Example: foundry monitor debate.jsonl --json scores.json")(
        cli_vectors.monitor
    )
    from foundry.cli import merge as cli_merge

    app.command(
        "merge",
        epilog="Example: foundry merge --from jonah-okafor:0.7 --from priya-castellanos:0.3 "
        "--method ties --density 0.5 --as jonah-priya",
    )(cli_merge.merge)
    from foundry.cli import debate as cli_debate

    app.command(
        "debate",
        epilog="Example: foundry debate --conflict all --compare prompt,dpo   or   foundry debate "
        '"Will AI capex earn back its cost?" --persona tobias-renn --persona jonah-okafor',
    )(cli_debate.debate)


_register_model_commands()
