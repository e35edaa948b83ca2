"""Storage every Ray node reaches (`paths.shared_url`, any fsspec URL): how a step's inputs reach a
node and its adapters come back without touching the flow machine's disk.

Files travel as content-addressed objects (`objects/ab/<sha256>`), so the base model and corpora
go up once however many steps read them. A tree is described by a manifest `{relative path:
{sha256, size}}` that travels with the Ray task itself; only training checkpoints, which must
outlive a lost node, keep their manifests in the store (`checkpoints/...json`, written after
their objects, so a listed checkpoint is complete).

Public entry points: `SharedStore` (`put_tree`, `get_tree`, `fetch_tree`, checkpoint manifests),
`tree_manifest`, `verify_tree` and `WeightsPolicyError`.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from foundry.atomic import replace_dir, staged_dir
from foundry.errors import FoundryError
from foundry.training.datasets import file_digest

Manifest = dict[str, dict[str, Any]]
# Weight formats that unpickle on load: never accepted from another machine.
PICKLED_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"}
_hashes: dict[tuple[str, int, int], str] = {}


class WeightsPolicyError(FoundryError):
    """A step's output broke the rules for weights: a pickle, a bad checksum, no safetensors."""


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) for the length of the process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hashes:
        _hashes[key] = file_digest(path)
    return _hashes[key]


def tree_files(root: Path, relpaths: Iterable[str]) -> list[str]:
    """The files under each of `relpaths` (files or folders under `root`), as relative paths.

    Hidden folders (staging areas of atomic writes) and temporary files are left out."""
    found: list[str] = []
    for rel in relpaths:
        top = root / rel
        candidates = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for path in candidates:
            relative = path.relative_to(root)
            if not path.is_file() or any(
                part.startswith(".") for part in relative.parts[len(Path(rel).parts) :]
            ):
                continue
            found.append(relative.as_posix())
    return sorted(set(found))


def tree_manifest(root: Path, relpaths: Iterable[str]) -> Manifest:
    """{relative path: {sha256, size}} of the files under `relpaths`."""
    return {
        rel: {"sha256": file_sha256(root / rel), "size": (root / rel).stat().st_size}
        for rel in tree_files(root, relpaths)
    }


def check_weights_policy(manifest: Manifest, where: str) -> None:
    """Refuse pickled weights, and adapter folders without their safetensors file."""
    pickled = [rel for rel in manifest if Path(rel).suffix.lower() in PICKLED_SUFFIXES]
    if pickled:
        raise WeightsPolicyError(
            f"{where}: refusing pickled files {', '.join(pickled)}; only .safetensors weights "
            "are loaded (save with safe_serialization=True)"
        )
    for rel in manifest:
        if Path(rel).name == "adapter_config.json":
            weights = str(Path(rel).with_name("adapter_model.safetensors").as_posix())
            if weights not in manifest:
                raise WeightsPolicyError(f"{where}: {Path(rel).parent} has no {weights}")


def verify_tree(root: Path, manifest: Manifest, where: str) -> None:
    """Check the files under `root` are the ones `manifest` lists (a shared filesystem's copy),
    and that every safetensors file opens."""
    check_weights_policy(manifest, where)
    for rel, entry in manifest.items():
        path = root / rel
        if not path.is_file():
            raise WeightsPolicyError(f"{where}: {path} is missing (the step listed it)")
        if file_sha256(path) != entry["sha256"]:
            raise WeightsPolicyError(
                f"{where}: {path} does not match the checksum the step wrote (a partial or "
                "concurrent write?); rerun the step"
            )
        if path.suffix == ".safetensors":
            _check_safetensors(path, where)


def _check_safetensors(path: Path, where: str) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            list(handle.keys())
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
        raise WeightsPolicyError(
            f"{where}: {path} is not a readable safetensors file: {exc}"
        ) from None


class SharedStore:
    """Objects and checkpoint manifests under one fsspec URL."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def _object(self, sha256: str) -> str:
        return self._path("objects", sha256[:2], sha256)

    def put_tree(self, root: Path, relpaths: Iterable[str]) -> Manifest:
        """Upload the files under `relpaths` that the store lacks; their manifest."""
        manifest = tree_manifest(root, relpaths)
        for rel, entry in manifest.items():
            target = self._object(entry["sha256"])
            if self.fs.exists(target):
                continue
            temporary = f"{target}.{secrets.token_hex(6)}.tmp"
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(root / rel), temporary)
            self.fs.mv(temporary, target)
        return manifest

    def get_tree(self, manifest: Manifest, dest: Path) -> None:
        """Bring `dest` up to `manifest` in place: files that differ are downloaded and checked
        (each renamed into place whole); files already equal are kept."""
        for rel, entry in manifest.items():
            path = dest / rel
            if path.is_file() and file_sha256(path) == entry["sha256"]:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            try:
                self.fs.get_file(self._object(entry["sha256"]), str(temporary))
                if file_sha256(temporary) != entry["sha256"]:
                    raise WeightsPolicyError(
                        f"{self.url}: the object for {rel} does not match its checksum"
                    )
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)

    def fetch_tree(
        self, manifest: Manifest, root: Path, folders: Iterable[str], where: str
    ) -> None:
        """Install each of `folders` (relative to `root`) from `manifest`, checked first: the
        policy on weights, every checksum, every safetensors file readable. Each folder is
        swapped in whole, so a failed fetch leaves the old one."""
        check_weights_policy(manifest, where)
        for folder in folders:
            inside = {
                rel[len(folder) + 1 :]: entry
                for rel, entry in manifest.items()
                if rel.startswith(f"{folder}/")
            }
            if not inside:
                continue
            target = root / folder
            with staged_dir(target.parent, prefix=f".{target.name}-fetch-") as stage:
                self.get_tree(inside, stage / "tree")
                verify_tree(stage / "tree", inside, where)
                replace_dir(stage / "tree", target)

    def put_checkpoint(self, root: Path, checkpoint: str) -> None:
        """Upload `root/checkpoint` (a trainer checkpoint folder), then its manifest."""
        manifest = self.put_tree(root, [checkpoint])
        name = self._path("checkpoints", f"{checkpoint}.json")
        self.fs.makedirs(name.rsplit("/", 1)[0], exist_ok=True)
        temporary = f"{name}.{secrets.token_hex(6)}.tmp"
        self.fs.pipe_file(temporary, json.dumps(manifest, sort_keys=True).encode())
        self.fs.mv(temporary, name)

    def checkpoints(self, scope: str) -> dict[str, Manifest]:
        """{checkpoint folder relative to the project root: manifest} stored under `scope`."""
        top, base = self._path("checkpoints"), self._path("checkpoints", scope)
        if not self.fs.exists(base):
            return {}
        found = {}
        for name in self.fs.find(base):
            if name.endswith(".json"):
                found[name[len(top) + 1 : -len(".json")]] = json.loads(self.fs.cat_file(name))
        return found

    def drop_checkpoints(self, scope: str) -> None:
        """Forget `scope`'s checkpoint manifests (their objects stay until collected)."""
        base = self._path("checkpoints", scope)
        if self.fs.exists(base):
            self.fs.rm(base, recursive=True)
