"""The `local` target: `foundry serve`, the base with every persona's adapter and vector.

`build_app(config)` loads the base once, attaches each persona's adapter under the persona's slug
and registers each persona vector (`<slug>@steer` on the base, `<slug>@dpo+steer` with the
adapter), then returns the OpenAI-compatible app (`deploy.openai_server`) and its batching
engine. Each persona is served by its champion deployed with `foundry deploy --target local`
(recorded in `.foundry/serving/local/manifest.json`), else by its trained `registry.stage`
adapter, so every persona answers in development too. `runtime_lora_roots(config)` lists the
folders `foundry serve --allow-runtime-lora` may load adapters from.

`LocalTarget` deploys by copying the champion's adapter files under `.foundry/serving/local/`;
it hot-swaps them on the server at `deploy.local.url` when one runs (sending
`FOUNDRY_SERVE_API_KEY` when set), and otherwise starts a temporary server on a free port for the
smoke test.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import DeployError
from deploy.batching import BatchingEngine
from deploy.bundle import AdapterBundle, TargetLimits
from deploy.manifest import read_manifest
from deploy.openai_server import create_app
from deploy.self_hosted import AdapterFolderTarget
from deploy.vllm_client import VllmClient
from foundry.config import FoundryConfig, load_settings
from foundry.training.base_model import base_tag

BASE_NAME = "base"


def manifest_path(config: FoundryConfig) -> Path:
    return serving_root(config) / "manifest.json"


def serving_root(config: FoundryConfig) -> Path:
    return config.cache_dir / "serving" / "local"


def served_adapters(
    config: FoundryConfig, source: str = "auto"
) -> tuple[dict[str, Path], dict[str, str]]:
    """(slug -> adapter folder, slug -> `deployed` or `trained`). `auto`: each persona's champion
    deployed with `foundry deploy --target local`, else its trained adapter, so every persona
    answers; `deployed` or `trained`: only that kind."""
    from foundry.data.personas import discover_personas

    if source not in ("auto", "deployed", "trained"):
        raise DeployError(f"adapter source {source!r}: use auto, deployed or trained")
    deployed = read_manifest(manifest_path(config)) if source != "trained" else {}
    if source == "deployed" and not deployed:
        raise DeployError("nothing is deployed locally yet: run `foundry deploy --target local`")
    folders = {slug: Path(path) for slug, path in deployed.items()}
    if source != "deployed":
        stage = config.registry.stage
        for slug in discover_personas(config.personas_dir):
            trained = config.adapter_dir(slug, stage)
            if slug not in folders and (trained / "adapter_config.json").is_file():
                folders[slug] = trained
    origin = {slug: "deployed" if slug in deployed else "trained" for slug in folders}
    return dict(sorted(folders.items())), origin


def runtime_lora_roots(config: FoundryConfig) -> list[Path]:
    """The folders runtime adapter loading may read from: the project folder, the local
    target's copies (`foundry deploy --target local` hot-swaps from there) and
    `deploy.local.lora_roots` (relative to the project folder)."""
    extra = [config.resolve(Path(root)) for root in config.deploy.local.lora_roots]
    return list(dict.fromkeys([config.root, serving_root(config), *extra]))


def build_app(
    config: FoundryConfig,
    *,
    max_batch: int = 16,
    window_s: float = 0.01,
    source: str = "auto",
    api_key: str | None = None,
    allow_runtime_lora: bool = True,
    lora_roots: list[Path] | None = None,
) -> tuple[Any, BatchingEngine, dict[str, Path], set[str]]:
    """(app, engine, served adapters, registered vector names); `source` as in
    `served_adapters`, `api_key`, `allow_runtime_lora` and `lora_roots` as in
    `deploy.openai_server.create_app`."""
    from foundry.data.personas import discover_personas
    from foundry.steering.hooks import register_vectors
    from foundry.steering.store import META_FILE, load_persona_vector
    from foundry.training.adapters import attach_adapters
    from foundry.training.base_model import load_base

    adapters, _ = served_adapters(config, source)
    base = load_base(config)
    model = attach_adapters(base.model, adapters)
    names: set[str] = set()
    for slug in discover_personas(config.personas_dir):
        if not (config.vector_dir(slug) / META_FILE).is_file():
            continue
        vector = load_persona_vector(
            config.vector_dir(slug),
            base_model=base.identity,
            hidden_size=int(base.model.config.hidden_size),
        )
        for variant in ("steer", "dpo+steer"):
            if variant in vector.meta.get("alpha", {}):
                register_vectors(model, {f"{slug}@{variant}": vector.steer_vector(variant)})
                names.add(f"{slug}@{variant}")
    engine = BatchingEngine(model, base.tokenizer, max_batch=max_batch, window_s=window_s)
    app = create_app(
        engine, BASE_NAME, adapters, names,
        api_key=api_key, allow_runtime_lora=allow_runtime_lora, lora_roots=lora_roots,
    )  # fmt: skip
    return app, engine, adapters, names


@dataclass
class ThreadServer:
    """A uvicorn server on 127.0.0.1 in a daemon thread (tests, and deploy's smoke test)."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(app: Any, timeout_s: float = 30.0) -> ThreadServer:
    """Start `app` on a free port of 127.0.0.1 and wait until it accepts requests."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise DeployError(f"the local server did not start on port {port}")
        time.sleep(0.05)
    return ThreadServer(f"http://127.0.0.1:{port}", server, thread)


class LocalTarget(AdapterFolderTarget):
    name = "local"

    def __init__(self, config: FoundryConfig) -> None:
        self.config = config
        self._temporary: tuple[ThreadServer, BatchingEngine] | None = None
        url, client = config.deploy.local.url, None
        if url:
            key = load_settings().serve_api_key
            secret = key.get_secret_value() if key else None
            client = VllmClient(url, secret, setting="deploy.local.url")
        super().__init__(
            root=str(serving_root(config)),
            served_root="",
            base_model=config.base_model.name,
            manifest=manifest_path(config),
            max_rank=0,
            max_bytes=int(config.deploy.max_adapter_mb * 2**20),
            client=client,
            accepted=(base_tag(config),),
        )

    def limits(self, bundle: AdapterBundle) -> TargetLimits:
        """As any self-hosted target, and with the tiny base: the very base build the server
        loads (another build has the same shapes, so a mismatch would load and talk nonsense)."""
        if self.config.base_model.is_tiny:
            from foundry.training.tiny_cache import latest_tiny

            adapter = json.loads((bundle.folder / "adapter_config.json").read_text())
            trained_on = Path(str(adapter.get("base_model_name_or_path") or "")).name
            serving = latest_tiny(self.config)
            if serving is not None and trained_on != serving.name:
                raise DeployError(
                    f"{bundle.slug} v{bundle.version} was trained on the tiny base {trained_on!r}, "
                    f"but the local server loads {serving.name!r} (rebuilt since); retrain it "
                    "(`foundry run`) or deploy a newer version"
                )
        return super().limits(bundle)

    def running_client(self, start: bool = False) -> VllmClient | None:
        if self.client is None and start:
            app, engine, _, _ = build_app(self.config, lora_roots=runtime_lora_roots(self.config))
            try:
                server = serve_in_thread(app)
            except DeployError:
                engine.close()
                raise
            self._temporary = (server, engine)
            self.client = VllmClient(server.url)
        return self.client

    def close(self) -> None:
        if self._temporary is not None:
            server, engine = self._temporary
            server.stop()
            engine.close()
            self._temporary, self.client = None, None


def make_target(config: FoundryConfig) -> LocalTarget:
    return LocalTarget(config)
