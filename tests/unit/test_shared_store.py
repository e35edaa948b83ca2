"""Shared storage for Ray steps: trees go up and come back byte for byte, outputs are checked
before they are installed, and checkpoints are mirrored only once complete."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from foundry.orchestration.checkpoint_mirror import mirrored_checkpoints, restore_checkpoints
from foundry.orchestration.shared_store import (
    SharedStore,
    WeightsPolicyError,
    tree_manifest,
    verify_tree,
)


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _safetensors(path: Path, value: float = 1.0) -> None:
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.full((2, 2), value)}, str(path))


def test_a_tree_round_trips_through_the_store_and_is_stored_once(tmp_path):
    store = SharedStore(f"file://{tmp_path / 'shared'}")
    source = tmp_path / "project"
    _write(source, {"data/a.txt": b"alpha", "data/sub/b.txt": b"beta", "data/copy.txt": b"alpha",
                    "data/.staging-x/tmp": b"half", "foundry.yaml": b"x: 1\n"})  # fmt: skip
    manifest = store.put_tree(source, ["data", "foundry.yaml", "missing"])
    assert sorted(manifest) == ["data/a.txt", "data/copy.txt", "data/sub/b.txt", "foundry.yaml"]
    objects = [p for p in (tmp_path / "shared" / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 3  # alpha once for its two paths

    dest = tmp_path / "node"
    _write(dest, {"data/a.txt": b"stale"})
    store.get_tree(manifest, dest)
    assert (dest / "data" / "a.txt").read_bytes() == b"alpha"
    assert (dest / "data" / "sub" / "b.txt").read_bytes() == b"beta"
    assert tree_manifest(dest, ["data", "foundry.yaml"]) == manifest


def test_fetch_installs_checked_folders_and_refuses_pickles_and_bad_objects(tmp_path):
    store = SharedStore(str(tmp_path / "shared"))  # a plain path is a local fsspec URL too
    node, project = tmp_path / "node", tmp_path / "project"
    _safetensors(node / "adapters" / "p" / "dpo" / "adapter_model.safetensors")
    _write(node, {"adapters/p/dpo/adapter_config.json": b"{}"})
    _write(project, {"adapters/p/dpo/old.txt": b"old"})
    manifest = store.put_tree(node, ["adapters/p/dpo"])
    store.fetch_tree(manifest, project, ["adapters/p/dpo"], "test step")
    assert sorted(p.name for p in (project / "adapters/p/dpo").iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors",
    ]  # fmt: skip

    pickled = {**manifest, "adapters/p/dpo/pytorch_model.bin": manifest[next(iter(manifest))]}
    with pytest.raises(WeightsPolicyError, match=r"refusing pickled files .*pytorch_model\.bin"):
        store.fetch_tree(pickled, project, ["adapters/p/dpo"], "test step")

    weights = "adapters/p/dpo/adapter_model.safetensors"
    object_path = tmp_path / "shared" / "objects" / manifest[weights]["sha256"][:2]
    (object_path / manifest[weights]["sha256"]).write_bytes(b"tampered")
    _write(project, {"adapters/p/dpo/keep.txt": b"kept"})
    with pytest.raises(WeightsPolicyError, match="does not match its checksum"):
        store.fetch_tree(manifest, project, ["adapters/p/dpo"], "test step")
    assert (project / "adapters/p/dpo/keep.txt").read_bytes() == b"kept"  # old folder untouched


def test_verify_tree_names_a_changed_file_and_an_adapter_without_safetensors(tmp_path):
    _safetensors(tmp_path / "a" / "adapter_model.safetensors")
    _write(tmp_path, {"a/adapter_config.json": b"{}"})
    manifest = tree_manifest(tmp_path, ["a"])
    verify_tree(tmp_path, manifest, "step")
    _safetensors(tmp_path / "a" / "adapter_model.safetensors", value=2.0)
    with pytest.raises(WeightsPolicyError, match="does not match the checksum"):
        verify_tree(tmp_path, manifest, "step")
    no_weights = {k: v for k, v in manifest.items() if k.endswith(".json")}
    with pytest.raises(WeightsPolicyError, match="has no a/adapter_model.safetensors"):
        verify_tree(tmp_path, no_weights, "step")
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(WeightsPolicyError, match="not a readable safetensors file"):
        verify_tree(tmp_path, tree_manifest(tmp_path, ["a"]), "step")


def test_only_complete_checkpoints_are_mirrored_and_the_newest_is_restored(tmp_path, monkeypatch):
    import foundry.orchestration.checkpoint_mirror as mirror

    monkeypatch.setattr(mirror, "LOOK_EVERY_S", 0.05)
    store = SharedStore(str(tmp_path / "shared"))
    node = tmp_path / "node"
    work = node / ".foundry" / "work" / "p" / "sft-k"
    with mirrored_checkpoints(store, node, ".foundry/work/p"):
        _write(work, {"checkpoint-2/adapter_model.safetensors": b"w2",
                      "checkpoint-2/trainer_state.json": b"{}"})  # fmt: skip
        _write(work, {"checkpoint-4/adapter_model.safetensors": b"w4"})  # no state yet
        deadline = time.monotonic() + 10
        while not store.checkpoints(".foundry/work/p") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert list(store.checkpoints(".foundry/work/p")) == [".foundry/work/p/sft-k/checkpoint-2"]
        _write(work, {"checkpoint-4/trainer_state.json": json.dumps({"global_step": 4}).encode()})
        deadline = time.monotonic() + 10
        while len(store.checkpoints(".foundry/work/p")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    other = tmp_path / "other-node"
    assert restore_checkpoints(store, other, ".foundry/work/p") == 1
    restored = other / ".foundry" / "work" / "p" / "sft-k"
    assert sorted(p.name for p in restored.iterdir()) == ["checkpoint-4"]
    assert (restored / "checkpoint-4" / "adapter_model.safetensors").read_bytes() == b"w4"
    store.drop_checkpoints(".foundry/work/p")
    assert store.checkpoints(".foundry/work/p") == {}
