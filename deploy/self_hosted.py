"""What the `local` and `vllm` targets share: adapters in a folder, served by the persona's slug.

An upload is a copy of the bundle's files to `<root>/<slug>/<short digest>/` (a folder or any
fsspec URL), so every version keeps its own folder and rolling back is loading the previous one.
`activate` records the slug's folder in the manifest (what a restarted server loads) and, when a
server is running, hot-swaps it there with vLLM's runtime LoRA endpoints: unload the name, load
the new path. Without a running server, `chat` raises `NotServing` and the deploy is recorded
untested.
"""

from __future__ import annotations

import json
from pathlib import Path

from deploy.bundle import ADAPTER_FILES, AdapterBundle, TargetLimits, adapter_digest
from deploy.manifest import read_manifest, set_served
from deploy.smoke import NotServing
from deploy.target import Remote
from deploy.vllm_client import LORA_RANKS, VllmClient


class AdapterFolderTarget:
    """A target whose adapters live in a folder its server reads; subclasses set the server."""

    name = "self-hosted"

    def __init__(
        self,
        *,
        root: str,
        served_root: str,
        base_model: str,
        manifest: Path,
        max_rank: int,
        max_bytes: int,
        client: VllmClient | None,
        accepted: tuple[str, ...] = (),
    ) -> None:
        import fsspec

        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.served_root = (served_root or self.root).rstrip("/")
        self.base_model = base_model
        # `base_model` tags of versions this server's base can serve (besides its own name).
        self.accepted = accepted
        self.manifest = manifest
        self.max_rank = max_rank or LORA_RANKS[-1]
        self.max_bytes = max_bytes
        self.client = client

    def limits(self, bundle: AdapterBundle) -> TargetLimits:
        bases = tuple(dict.fromkeys((self.base_model, *self.accepted)))
        return TargetLimits(self.name, 1, self.max_rank, self.max_bytes, bases)

    def _place(self, bundle: AdapterBundle) -> str:
        return f"{self.root.rstrip('/')}/{bundle.slug}/{bundle.short_digest}"

    def _remote(self, bundle: AdapterBundle) -> Remote:
        return Remote(f"{self.served_root}/{bundle.slug}/{bundle.short_digest}", bundle.slug)

    def find(self, bundle: AdapterBundle) -> Remote | None:
        place = self._place(bundle)
        if not all(self.fs.exists(f"{place}/{name}") for name in ADAPTER_FILES):
            return None
        same = adapter_digest(place, lambda path: self.fs.open(path, "rb")) == bundle.digest
        return self._remote(bundle) if same else None

    def upload(self, bundle: AdapterBundle) -> Remote:
        place = self._place(bundle)
        self.fs.makedirs(place, exist_ok=True)
        for name, path in bundle.files().items():
            self.fs.put_file(str(path), f"{place}/{name}.partial")
            self.fs.mv(f"{place}/{name}.partial", f"{place}/{name}")
        return self._remote(bundle)

    def activate(self, remote: Remote) -> None:
        set_served(self.manifest, remote.served_name, remote.remote_id)
        self.served_changed()
        client = self.running_client(start=True)  # a server started now loads the manifest
        if client is not None:
            if remote.served_name in client.models():
                client.unload(remote.served_name)  # vLLM refuses a duplicate name
            client.load(remote.served_name, remote.remote_id)

    def deactivate(self, remote: Remote) -> None:
        if read_manifest(self.manifest).get(remote.served_name) == remote.remote_id:
            set_served(self.manifest, remote.served_name, None)
            self.served_changed()
        client = self.running_client()
        if client is not None and remote.served_name in client.models():
            client.unload(remote.served_name)

    def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        client = self.running_client(start=True)
        if client is None:
            raise NotServing(self.not_serving_hint())
        return client.chat(model, messages, max_tokens)

    def live(self) -> set[str] | None:
        client = self.running_client()
        return None if client is None else set(client.models())

    def rank_of(self, served_path: str) -> int:
        """The LoRA rank of a served adapter, read where this machine reaches it."""
        place = self.root.rstrip("/") + served_path[len(self.served_root) :]
        with self.fs.open(f"{place}/adapter_config.json", "r") as handle:
            return int(json.load(handle)["r"])

    # What subclasses change.
    def served_changed(self) -> None:
        """The manifest changed (vLLM rewrites its launch spec)."""

    def running_client(self, start: bool = False) -> VllmClient | None:
        """The running server's client; `start`: a target may start one to smoke-test."""
        return self.client

    def not_serving_hint(self) -> str:
        return "no server to smoke-test on"

    def close(self) -> None:
        """Nothing to release unless a subclass started a server."""
