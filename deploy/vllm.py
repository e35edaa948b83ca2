"""The `vllm` target: adapters copied where vLLM reads them, a launch spec, and hot swaps.

Each deploy copies the bundle to `deploy.vllm.adapter_root/<slug>/<digest>/` (a folder or any
fsspec URL) and rewrites the launch spec for every deployed persona under
`.foundry/deploy/vllm/`: the `vllm serve` command (`--enable-lora`, `--lora-modules`,
`--max-loras`, `--max-lora-rank` rounded up to a size vLLM accepts), a compose file and a
Kubernetes container. With `deploy.vllm.url` set, the running server (started with
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`) hot-swaps the adapter and is smoke-tested; without it
the deploy is recorded untested, to be served when the spec is started.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from deploy import DeployError
from deploy.manifest import read_manifest
from deploy.self_hosted import AdapterFolderTarget
from deploy.vllm_client import LORA_RANKS, VllmClient
from foundry.atomic import write_text_atomic
from foundry.config import FoundryConfig
from foundry.training.base_model import base_tag, served_base

__all__ = ["LORA_RANKS", "VllmClient", "VllmTarget", "launch_spec", "make_target", "rank_for"]


def rank_for(ranks: Iterable[int]) -> int:
    """The smallest --max-lora-rank vLLM accepts that holds every rank in `ranks`."""
    needed = max(ranks, default=8)
    for rank in LORA_RANKS:
        if rank >= needed:
            return rank
    raise DeployError(f"an adapter has rank {needed}, above vLLM's largest ({LORA_RANKS[-1]})")


def launch_spec(
    base_model: str, modules: Mapping[str, str], max_rank: int, port: int = 8000
) -> dict[str, Any]:
    """The `vllm serve` command, a compose service and a Kubernetes container serving `modules`
    (served name -> adapter path as the server sees it)."""
    if not modules:
        raise DeployError("no adapters to serve: deploy a persona first")
    command = [
        "vllm", "serve", base_model, "--enable-lora",
        "--lora-modules", *(f"{name}={path}" for name, path in modules.items()),
        "--max-loras", str(len(modules)), "--max-lora-rank", str(max_rank),
        "--port", str(port),
    ]  # fmt: skip
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    mounts = sorted({path.rsplit("/", 2)[0] for path in modules.values()})
    compose = {
        "services": {
            "vllm": {
                "image": "vllm/vllm-openai:latest",
                "command": command[2:],  # the image's entrypoint is `vllm serve`
                "environment": env,
                "ports": [f"{port}:{port}"],
                "volumes": [f"./adapters:{mount}" for mount in mounts],
                "deploy": {"resources": {"reservations": {"devices": [
                    {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
                ]}}},
            }
        }
    }  # fmt: skip
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:latest",
        "args": command[2:],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"containerPort": port}],
        "resources": {"limits": {"nvidia.com/gpu": 1}},
        "volumeMounts": [{"name": "adapters", "mountPath": mount} for mount in mounts],
    }
    return {"command": command, "env": env, "compose": compose, "kubernetes_container": container}


class VllmTarget(AdapterFolderTarget):
    name = "vllm"

    def __init__(self, config: FoundryConfig) -> None:
        settings = config.deploy.vllm
        root = settings.adapter_root
        if "://" not in root:
            root = str(config.resolve(Path(root)))
        self.spec_dir = config.cache_dir / "deploy" / "vllm"
        self.port = settings.port
        super().__init__(
            root=root,
            served_root=settings.served_root,
            base_model=settings.base_model or served_base(config),
            manifest=self.spec_dir / "manifest.json",
            max_rank=settings.max_lora_rank,
            max_bytes=int(config.deploy.max_adapter_mb * 2**20),
            client=VllmClient(settings.url, setting="deploy.vllm.url") if settings.url else None,
            accepted=(base_tag(config),),
        )

    def served_changed(self) -> None:
        """Rewrite the launch spec for what the manifest now serves."""
        served = read_manifest(self.manifest)
        files = ("command.sh", "compose.yaml", "kubernetes.yaml")
        if not served:
            for name in files:
                (self.spec_dir / name).unlink(missing_ok=True)
            return
        rank = self.max_rank if self.max_rank < LORA_RANKS[-1] else None
        spec = launch_spec(
            self.base_model, served, rank or rank_for(map(self.rank_of, served.values())),
            self.port,
        )  # fmt: skip
        env = " ".join(f"{k}={v}" for k, v in spec["env"].items())
        texts = {
            "command.sh": f"#!/bin/sh\n{env} {shlex.join(spec['command'])}\n",
            "compose.yaml": yaml.safe_dump(spec["compose"], sort_keys=False),
            "kubernetes.yaml": yaml.safe_dump(spec["kubernetes_container"], sort_keys=False),
        }
        for name in files:
            write_text_atomic(self.spec_dir / name, texts[name])

    def not_serving_hint(self) -> str:
        return (
            f"deploy.vllm.url is empty; the launch spec is in {self.spec_dir} (command.sh, "
            "compose.yaml, kubernetes.yaml): start vLLM with it, or set deploy.vllm.url to a "
            "running server to hot-swap and smoke-test"
        )


def make_target(config: FoundryConfig) -> VllmTarget:
    return VllmTarget(config)
