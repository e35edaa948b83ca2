"""`foundry serve`: the local OpenAI-compatible server over the base, every persona adapter and
every persona vector."""

from __future__ import annotations

from typing import Annotated

import typer

from foundry.cli.common import ConfigOption, console, load_cli_config, user_errors


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
) -> None:
    """Serve the base and each persona's adapter (model = the persona's slug) with the OpenAI
    chat completions API; `persona_vector: SLUG` in a request steers it. Concurrent requests are
    batched across adapters. Stop with Ctrl-C."""
    import uvicorn

    from deploy.local import BASE_NAME, build_app, served_adapters

    cfg = load_cli_config(config)
    with user_errors(), console.status("Loading the base model, adapters and vectors..."):
        _, origin = served_adapters(cfg, adapters)
        app, engine, served, vectors = build_app(
            cfg, max_batch=max_batch, window_s=window_ms / 1000, source=adapters
        )
    console.print(
        f"Serving on http://{host}:{port}/v1: models {BASE_NAME}, "
        f"{', '.join(f'{slug} ({origin[slug]})' for slug in served) or '-'}; "
        f"persona vectors for {', '.join(sorted({v.split('@')[0] for v in vectors})) or '-'}"
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        engine.close()
