"""`foundry deploy [--target T] [--persona SLUG]`, `foundry deploy status|undeploy`.

Deploying runs the one procedure of `deploy.release` per persona: checks before upload, upload
reused by content hash, smoke test, registry tags, rollback on failure. The registry is the
record of what is deployed; `status` shows it beside what each target answers for now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from foundry.cli.common import (
    ConfigOption,
    PersonaOption,
    console,
    err_console,
    load_cli_config,
    user_errors,
)

TargetOption = Annotated[
    str | None,
    typer.Option(
        "--target", "-t", help="local, vllm, together or fireworks (default: deploy.target)."
    ),
]

deploy_app = typer.Typer(invoke_without_command=True)


@deploy_app.callback(
    epilog="Example: foundry deploy --target local --persona tobias-renn   "
    "(then: foundry deploy status)"
)
def deploy(
    ctx: typer.Context,
    config: ConfigOption = None,
    target: TargetOption = None,
    persona: PersonaOption = None,
    version: Annotated[
        int | None, typer.Option(help="Deploy this registered version (one --persona only).")
    ] = None,
) -> None:
    """Deploy each persona's champion (or --version) to the target, smoke-test it, and record it
    on the model version; a failed smoke test puts back what was served before."""
    if ctx.invoked_subcommand is not None:  # `deploy -c X status`: the options carry over
        ctx.obj = {"config": config, "target": target, "persona": persona}
        return
    from deploy.release import NoChampion
    from deploy.rollout import deploy_personas
    from foundry.data.personas import discover_personas, select_personas

    cfg = load_cli_config(config)
    name = target or cfg.deploy.target
    with user_errors():
        slugs = select_personas(
            discover_personas(cfg.personas_dir), persona or [], cfg.personas_dir
        )
    failed: list[str] = []
    skipped: list[str] = []
    with user_errors(), console.status(f"Deploying to {name}...") as status:

        def report(slug: str, outcome: object) -> None:
            if isinstance(outcome, NoChampion) and not persona:
                skipped.append(slug)
                return
            if isinstance(outcome, Exception):
                failed.append(slug)
                err_console.print(f"[bold red]{slug}:[/] {outcome}", highlight=False)
                return
            tested = f"{outcome.latency_s:.2f} s" if outcome.latency_s >= 0 else "not tested"
            console.print(
                f"[green]{slug}[/] v{outcome.version} → {name} as [bold]{outcome.served_name}"
                f"[/] ({'upload reused' if outcome.reused else 'uploaded'}; smoke test "
                f"{tested}){': ' + repr(outcome.answer[:60]) if outcome.answer else ''}",
                highlight=False,
            )
            status.update(f"Deploying to {name}...")

        deploy_personas(cfg, slugs, name, version, on_done=report)
    if skipped:
        console.print(f"[dim]no champion yet, not deployed: {', '.join(skipped)}[/]")
    if failed:
        raise typer.Exit(1)


@deploy_app.command("status", epilog="Example: foundry deploy status --target vllm")
def status_cmd(
    ctx: typer.Context, config: ConfigOption = None, target: TargetOption = None
) -> None:
    """What the registry records as deployed (version, served name, remote id, smoke latency),
    and whether each target answers for it now (live: yes/no/? when it cannot be asked)."""
    from deploy import TARGET_NAMES, DeployError, get_target
    from deploy.release import deployment_status
    from foundry.data.personas import discover_personas

    config, target, _ = _carried(ctx, config, target, None)
    cfg = load_cli_config(config)
    names = [target] if target else list(TARGET_NAMES)
    opened = {}
    with user_errors():
        for name in names:
            try:
                opened[name] = get_target(name, cfg)
            except DeployError as exc:
                if target:
                    raise
                opened[name] = None
                err_console.print(f"[dim]{name}: not asked ({exc})[/]", highlight=False)
        try:
            rows = deployment_status(cfg, discover_personas(cfg.personas_dir), opened)
        finally:
            for handle in opened.values():
                if handle is not None:
                    handle.close()
    targets = sorted({row.target for row in rows})
    table = Table(
        title=f"deployments on {', '.join(targets)}",
        caption="times in UTC; smoke test in seconds; live ?: the target was not asked (no "
        "server running, or no credentials)",
    )
    renamed = any(row.served_name != row.slug for row in rows)
    columns = (
        "persona", *(("target",) if len(targets) > 1 else ()), "version",
        *(("served as",) if renamed else ()), "remote id", "deployed", "smoke", "live",
    )  # fmt: skip
    for column in columns:
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column in ("persona", "version", "deployed"),
            min_width=15 if column == "remote id" else None,
        )
    for row in rows:
        live = "?" if row.live is None else ("yes" if row.live else "[red]no[/]")
        table.add_row(
            row.slug, *((row.target,) if len(targets) > 1 else ()), f"v{row.version}",
            *((row.served_name,) if renamed else ()), _short_path(row.remote_id),
            row.deployed_at[5:16].replace("T", " "), row.latency_s, live,
        )  # fmt: skip
    console.print(table if rows else "nothing deployed yet; run `foundry deploy --target local`")


@deploy_app.command("undeploy", epilog="Example: foundry deploy undeploy -t local -p tobias-renn")
def undeploy_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    target: TargetOption = None,
    persona: PersonaOption = None,
) -> None:
    """Stop serving the personas on the target (uploads are kept, so a re-deploy reuses them)."""
    from deploy import get_target
    from deploy.release import undeploy
    from foundry.data.personas import discover_personas, select_personas

    config, target, persona = _carried(ctx, config, target, persona)
    cfg = load_cli_config(config)
    name = target or cfg.deploy.target
    with user_errors():
        opened = get_target(name, cfg)
        try:
            everyone = discover_personas(cfg.personas_dir)
            for slug in select_personas(everyone, persona or [], cfg.personas_dir):
                version = undeploy(cfg, opened, slug)
                if version is not None:
                    console.print(f"{slug}: v{version} no longer served on {name}")
        finally:
            opened.close()


def _carried(ctx: typer.Context, config: Any, target: Any, persona: Any) -> tuple[Any, Any, Any]:
    """A subcommand's options, else those given before it (`foundry deploy -t vllm status`)."""
    given = ctx.obj or {}
    return (
        config or given.get("config"),
        target or given.get("target"),
        persona or given.get("persona"),
    )


def _short_path(remote_id: str) -> str:
    """A served folder as `…/<digest>` (its persona is in its row); remote ids as they are."""
    parts = Path(remote_id).parts
    return f"…/{parts[-1]}" if remote_id.startswith("/") and len(parts) > 2 else remote_id
