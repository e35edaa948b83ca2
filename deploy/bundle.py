"""What leaves the machine when a persona is deployed: an adapter bundle, and the checks on it.

A bundle is a registered model version's adapter reduced to `ADAPTER_FILES` (weights and config;
never tokenizer files, training summaries or anything else in the run), with the content hash
every target names its upload by, so re-deploying the same weights reuses the upload.
`check_bundle` refuses, before any upload, what a target would refuse after one: a rank outside
its limits, a base model it was not trained on, files too large.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import DeployError
from foundry.atomic import replace_dir, staged_dir
from foundry.config import FoundryConfig

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # all that leaves the machine


@dataclass(frozen=True)
class AdapterBundle:
    """One persona version's adapter, as a target receives it."""

    slug: str
    version: int
    folder: Path  # holds exactly ADAPTER_FILES
    digest: str  # sha256 over the files' names and bytes
    rank: int
    lora_alpha: float
    target_modules: tuple[str, ...]  # as in adapter_config.json (module names or full paths)
    base_model: str  # the base the adapter was trained on (`base_model.name` at training)
    size_bytes: int

    @property
    def short_digest(self) -> str:
        """12 hex digits: enough to name uploads by content."""
        return self.digest[:12]

    def files(self) -> dict[str, Path]:
        return {name: self.folder / name for name in ADAPTER_FILES}


@dataclass(frozen=True)
class TargetLimits:
    """What a target accepts; `base_models` empty: the target checks the base itself."""

    target: str
    min_rank: int = 1
    max_rank: int = 512
    max_bytes: int = 1 << 30
    base_models: tuple[str, ...] = ()


def adapter_digest(folder: Path | str, open_file: Callable[[str], Any] | None = None) -> str:
    """sha256 over each allowed file's name and bytes, in a fixed order; `open_file` reads
    elsewhere than the local disk (e.g. an fsspec filesystem's `open`)."""
    opener = open_file or (lambda path: Path(path).open("rb"))
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        digest.update(name.encode() + b"\0")
        with opener(f"{str(folder).rstrip('/')}/{name}") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def bundle_from_folder(slug: str, version: int, folder: Path, base_model: str) -> AdapterBundle:
    """A bundle for the adapter files in `folder` (copied nowhere: `folder` must hold only
    what may leave, e.g. a folder made by `bundle_from_registry`, or `stage_bundle`'s)."""
    for name in ADAPTER_FILES:
        if not (folder / name).is_file():
            raise DeployError(
                f"{slug} v{version}: {folder} has no {name}; it is not a trained adapter"
            )
    config_path = folder / "adapter_config.json"
    try:
        adapter = json.loads(config_path.read_text())
        rank, alpha = int(adapter["r"]), float(adapter.get("lora_alpha", adapter["r"]))
        modules = adapter.get("target_modules") or []
    except (ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"{config_path}: not a LoRA adapter config ({exc})") from None
    if adapter.get("peft_type", "LORA") != "LORA":
        raise DeployError(f"{config_path}: peft_type {adapter['peft_type']!r}; only LORA deploys")
    modules = [modules] if isinstance(modules, str) else modules
    return AdapterBundle(
        slug=slug,
        version=version,
        folder=folder,
        digest=adapter_digest(folder),
        rank=rank,
        lora_alpha=alpha,
        target_modules=tuple(sorted(modules)),
        base_model=base_model,
        size_bytes=sum((folder / name).stat().st_size for name in ADAPTER_FILES),
    )


def stage_bundle(source: Path, target: Path) -> None:
    """Copy only `ADAPTER_FILES` from `source` to `target` (replaced whole, atomically)."""
    with staged_dir(target.parent, prefix=".bundle-") as stage:
        for name in ADAPTER_FILES:
            if not (source / name).is_file():
                raise DeployError(f"{source} has no {name}; it is not a trained adapter")
            shutil.copy2(source / name, stage / name)
        replace_dir(stage, target)  # staged_dir's clean-up ignores the moved folder


def bundle_dir(config: FoundryConfig, slug: str, version: int) -> Path:
    return config.cache_dir / "deploy" / "bundles" / slug / f"v{version}"


def bundle_from_registry(config: FoundryConfig, slug: str, version: int) -> AdapterBundle:
    """Download `slug`'s registered `version` and reduce it to a bundle (cached by version).

    Raises:
        RegistryError: no such version.
        DeployError: the version's adapter is incomplete or not a LoRA adapter.
    """
    from mlflow.exceptions import MlflowException

    from registry.loading import download_adapter
    from registry.models import model_name
    from registry.tracking import open_client, tracking_uri

    client = open_client(config)
    try:
        mv = client.get_model_version(model_name(slug), str(version))
    except MlflowException:
        raise DeployError(
            f"{model_name(slug)} has no version {version}; `foundry registry show {slug}` lists "
            "its versions"
        ) from None
    base = (mv.tags or {}).get("base_model", "")
    if not base:
        raise DeployError(
            f"{slug} v{version} has no `base_model` tag; it was not registered by this project"
        )
    folder = bundle_dir(config, slug, version)
    if not all((folder / name).is_file() for name in ADAPTER_FILES):
        with staged_dir(folder.parent, prefix=".download-") as download:
            source = download_adapter(
                f"models:/{model_name(slug)}/{version}", tracking_uri(config), download
            )
            stage_bundle(source, folder)
    return bundle_from_folder(slug, version, folder, base)


def check_bundle(bundle: AdapterBundle, limits: TargetLimits) -> None:
    """Refuse, before any upload, a bundle the target would refuse.

    Raises:
        DeployError: naming the persona, version, the limit and what to change.
    """
    who = f"{bundle.slug} v{bundle.version}"
    extra = sorted(p.name for p in bundle.folder.iterdir() if p.name not in ADAPTER_FILES)
    if extra:
        raise DeployError(f"{who}: {bundle.folder} holds files that may not leave: {extra}")
    if not limits.min_rank <= bundle.rank <= limits.max_rank:
        raise DeployError(
            f"{who}: LoRA rank {bundle.rank} is outside what {limits.target} serves "
            f"({limits.min_rank}..{limits.max_rank}); set `training.lora.r` within it and retrain "
            "(with `training.experts: style+reasoning` the persona's adapter stacks both experts: "
            "its rank is 2 x `training.lora.r`)"
        )
    if bundle.size_bytes > limits.max_bytes:
        raise DeployError(
            f"{who}: the adapter is {bundle.size_bytes / 2**20:.1f} MiB, over the "
            f"{limits.max_bytes / 2**20:.0f} MiB {limits.target} accepts "
            "(`deploy.max_adapter_mb`); lower the rank or the target modules"
        )
    if limits.base_models and bundle.base_model not in limits.base_models:
        raise DeployError(
            f"{who} was trained on base {bundle.base_model!r}, which {limits.target} does not "
            f"serve here (it serves {', '.join(limits.base_models)}); train on that base "
            f"(`base_model.name`) or set `deploy.{limits.target}.base_model`"
        )
