"""Atomic file writes and folder swaps leave old or new content, never a mix or leftovers."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundry import atomic
from foundry.atomic import replace_dir, staged_dir, write_bytes_atomic, write_text_atomic

REAL_REPLACE = os.replace


class Boom(Exception):
    """Raised by the patched functions to simulate a failure."""


def raise_boom(*args: object) -> None:
    raise Boom("simulated failure")


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def make_tree(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# Files


def test_write_text_atomic_creates_a_file_and_its_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "contract.yaml"
    write_text_atomic(path, "name: Zoë\n")
    assert path.read_bytes() == "name: Zoë\n".encode()
    assert names(path.parent) == ["contract.yaml"]


def test_write_text_atomic_replaces_content_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("old content that is longer than the new one\n", encoding="utf-8")
    write_text_atomic(path, "new\n")
    assert path.read_text(encoding="utf-8") == "new\n"
    assert names(tmp_path) == ["notes.txt"]


def test_write_bytes_atomic_writes_bytes_unchanged(tmp_path: Path) -> None:
    data = bytes(range(256)) + b"\r\n\n"
    write_bytes_atomic(tmp_path / "blob.bin", data)
    assert (tmp_path / "blob.bin").read_bytes() == data


def test_failed_rename_keeps_old_content_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("old\n", encoding="utf-8")

    def failing_replace(src: object, dst: object) -> None:
        assert Path(str(src)).exists()  # the new content was fully written before the rename
        raise Boom("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(Boom):
        write_text_atomic(path, "new\n")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert names(tmp_path) == ["notes.txt"]


def test_failure_while_writing_keeps_old_content_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("old\n", encoding="utf-8")

    def failing_fsync(fd: int) -> None:
        raise Boom("I/O error")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(Boom):
        write_text_atomic(path, "new\n" * 10_000)
    assert path.read_text(encoding="utf-8") == "old\n"
    assert names(tmp_path) == ["notes.txt"]


def test_failed_first_write_leaves_no_file_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic.os, "replace", raise_boom)
    with pytest.raises(Boom):
        write_text_atomic(tmp_path / "new.txt", "text")
    assert names(tmp_path) == []


def test_new_file_gets_the_mode_a_plain_write_would_give(tmp_path: Path, umask_027: None) -> None:
    path = tmp_path / "new.txt"
    write_text_atomic(path, "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_replaced_file_keeps_its_mode(tmp_path: Path, umask_027: None) -> None:
    path = tmp_path / "shared.txt"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o664)
    write_text_atomic(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert path.read_text(encoding="utf-8") == "new"


# Folders


def test_replace_dir_moves_a_folder_into_a_missing_target(tmp_path: Path) -> None:
    new = make_tree(tmp_path / "new", {"a.txt": "A", "sub/b.txt": "B"})
    target = tmp_path / "out" / "persona"
    replace_dir(new, target)
    assert tree(target) == {"a.txt": "A", "sub/b.txt": "B"}
    assert not new.exists()


def test_replace_dir_swaps_folders_and_removes_the_old_one(tmp_path: Path) -> None:
    target = make_tree(tmp_path / "persona", {"old.txt": "old", "keep/x.txt": "x"})
    new = make_tree(tmp_path / "new", {"contract.yaml": "name: N"})
    replace_dir(new, target)
    assert tree(target) == {"contract.yaml": "name: N"}
    assert names(tmp_path) == ["persona"]


def test_replace_dir_removes_a_stale_backup_from_an_earlier_run(tmp_path: Path) -> None:
    make_tree(tmp_path / ".persona.old", {"stale.txt": "stale"})
    target = make_tree(tmp_path / "persona", {"old.txt": "old"})
    replace_dir(make_tree(tmp_path / "new", {"n.txt": "n"}), target)
    assert tree(target) == {"n.txt": "n"}
    assert names(tmp_path) == ["persona"]


def test_replace_dir_restores_the_old_folder_if_the_move_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = make_tree(tmp_path / "persona", {"old.txt": "old"})
    new = make_tree(tmp_path / "new", {"new.txt": "new"})

    def replace(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        if Path(src) == new:
            raise Boom("cross-device move")
        REAL_REPLACE(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(Boom):
        replace_dir(new, target)
    assert tree(target) == {"old.txt": "old"}
    assert tree(new) == {"new.txt": "new"}
    assert names(tmp_path) == ["new", "persona"]


# Staging


def test_staged_dir_is_a_fresh_folder_under_parent_removed_afterwards(tmp_path: Path) -> None:
    with staged_dir(tmp_path / "personas", prefix=".import-") as stage:
        assert stage.parent == tmp_path / "personas"
        assert stage.name.startswith(".import-")
        assert names(stage) == []
        (stage / "f.txt").write_text("x", encoding="utf-8")
    assert not stage.exists()
    assert names(tmp_path / "personas") == []


def test_staged_dir_is_removed_on_exception(tmp_path: Path) -> None:
    with pytest.raises(Boom), staged_dir(tmp_path) as stage:
        make_tree(stage, {"half/written.txt": "partial"})
        raise Boom("stage failed")
    assert not stage.exists()
    assert names(tmp_path) == []


def test_staged_then_replaced_folder_lands_and_nothing_else_remains(tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    make_tree(personas / "zoe", {"contract.yaml": "old"})
    with staged_dir(personas) as stage:
        built = make_tree(stage / "zoe", {"contract.yaml": "new", "corpus/a.jsonl": "{}"})
        replace_dir(built, personas / "zoe")
    assert names(personas) == ["zoe"]
    assert tree(personas / "zoe") == {"contract.yaml": "new", "corpus/a.jsonl": "{}"}


def test_failed_staging_keeps_the_existing_folder(tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    make_tree(personas / "zoe", {"contract.yaml": "old"})
    with pytest.raises(Boom), staged_dir(personas) as stage:
        make_tree(stage / "zoe", {"contract.yaml": "half"})
        raise Boom("import failed before the swap")
    assert names(personas) == ["zoe"]
    assert tree(personas / "zoe") == {"contract.yaml": "old"}
