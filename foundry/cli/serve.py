"""`foundry serve`: the local OpenAI-compatible server over the base, every persona adapter and
every persona vector."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from foundry.cli.common import ConfigOption, console, err_console, load_cli_config, user_errors


def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_batch: Annotated[int, typer.Option(min=1, help="Most requests in one batch.")] = 16,
    window_ms: Annotated[
        float, typer.Option(min=0, help="How long a batch waits for more requests.")
    ] = 10.0,
    adapters: Annotated[
        str,
        typer.Option(
            help="auto: each persona's champion deployed with `foundry deploy --target local`, "
            "else its trained adapter; deployed: only deployed champions; trained: only trained "
            "adapters."
        ),
    ] = "auto",
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="FOUNDRY_SERVE_API_KEY",
            show_default=False,
            help="Require `Authorization: Bearer KEY` on every /v1 request (others get 401), as "
            "vLLM's --api-key; prefer the environment variable, which stays out of the shell "
            "history and the process list.",
        ),
    ] = None,
    allow_runtime_lora: Annotated[
        bool,
        typer.Option(
            "--allow-runtime-lora",
            help="Turn on /v1/load_lora_adapter and /v1/unload_lora_adapter (needed by `foundry "
            "deploy --target local` with deploy.local.url); adapters load only from the project "
            "folder, .foundry/serving/local and deploy.local.lora_roots. Off: they answer 403.",
        ),
    ] = False,
) -> None:
    """Serve the base and each persona's adapter (model = the persona's slug) with the OpenAI
    chat completions API; `persona_vector: SLUG` in a request steers it. Concurrent requests are
    batched across adapters. Stop with Ctrl-C."""
    import uvicorn

    from deploy.local import BASE_NAME, build_app, runtime_lora_roots, served_adapters

    if api_key is not None and not api_key.strip():
        raise typer.BadParameter(
            "the key is empty; give one, or leave it out", param_hint="--api-key"
        )
    cfg = load_cli_config(config)
    if api_key is None and not _is_loopback(host):
        err_console.print(
            f"[bold yellow]warning:[/] serving on {host} without an API key: anyone who reaches "
            "the port can use the models; set FOUNDRY_SERVE_API_KEY (or --api-key), or serve on "
            "127.0.0.1",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    with user_errors(), console.status("Loading the base model, adapters and vectors..."):
        _, origin = served_adapters(cfg, adapters)
        app, engine, served, vectors = build_app(
            cfg, max_batch=max_batch, window_s=window_ms / 1000, source=adapters,
            api_key=api_key, allow_runtime_lora=allow_runtime_lora,
            lora_roots=runtime_lora_roots(cfg),
        )  # fmt: skip
    console.print(
        f"Serving on http://{host}:{port}/v1: models {BASE_NAME}, "
        f"{', '.join(f'{slug} ({origin[slug]})' for slug in served) or '-'}; "
        f"persona vectors for {', '.join(sorted({v.split('@')[0] for v in vectors})) or '-'}; "
        f"API key {'required' if api_key else 'none'}; runtime adapter loading "
        f"{'on' if allow_runtime_lora else 'off'}",
        soft_wrap=True,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        engine.close()


def _is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to any address
