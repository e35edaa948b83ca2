"""Unpacking the adapter archive a Together fine-tuning job produces.

Kept apart from `foundry.training.together` (the job's upload, polling and install) because
reading an untrusted archive has its own rules: gzip, zstd or plain tar; only the files beside
the shallowest `adapter_config.json`, taken by base name; pickles never written.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

from foundry.logs import get_logger
from foundry.training.adapters import (
    CONFIG_FILE,
    UNSAFE_SUFFIXES,
    WEIGHTS_FILE,
    AdapterError,
    check_adapter_folder,
)
from foundry.training.artifacts import TrainingError

logger = get_logger(__name__)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# What is copied out of the archive: the adapter and tokenizer files, never pickles
# (`training_args.bin`) or anything else.
KEPT_FILES = {
    CONFIG_FILE, WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
    "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
    "chat_template.jinja",
}  # fmt: skip


def unpack_adapter(archive: Path, folder: Path, source: str) -> None:
    """Copy the adapter and tokenizer files of a (gzip, zstd or plain) tar into `folder`.

    Only files beside the shallowest `adapter_config.json` are taken, by base name (no path
    from the archive is used), and only those in `KEPT_FILES`: pickled files are never written.

    Raises:
        TrainingError: no adapter in the archive, weights only as a pickle, or an unusable
            adapter (`foundry.training.adapters.check_adapter_folder`).
    """
    with tarfile.open(_plain_tar(archive), "r:*") as tar:
        files = [(PurePosixPath(m.name), m) for m in tar.getmembers() if m.isfile()]
        roots = [path.parent for path, _ in files if path.name == CONFIG_FILE]
        if not roots:
            raise TrainingError(f"the archive from {source} holds no {CONFIG_FILE}")
        root = min(roots, key=lambda p: len(p.parts))
        chosen = {path.name: member for path, member in files if path.parent == root}
        if WEIGHTS_FILE not in chosen:
            unsafe = sorted(name for name in chosen if name.endswith(UNSAFE_SUFFIXES))
            raise TrainingError(
                f"the adapter from {source} has no {WEIGHTS_FILE} (found {unsafe or 'nothing'}): "
                "only safetensors weights are accepted (pickled weights can run code)"
            )
        folder.mkdir(parents=True)
        for name in sorted(KEPT_FILES & chosen.keys()):
            with tar.extractfile(chosen[name]) as src, (folder / name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
    skipped = sorted(chosen.keys() - KEPT_FILES)
    if skipped:
        logger.info("adapter from %s: left out %s", source, ", ".join(skipped))
    try:
        check_adapter_folder(folder)
    except AdapterError as exc:
        raise TrainingError(f"the adapter from {source} is unusable: {exc}") from None


def _plain_tar(archive: Path) -> Path:
    """`archive` itself, or its zstd-decompressed tar beside it (tarfile reads gzip itself)."""
    with archive.open("rb") as handle:
        if handle.read(4) != ZSTD_MAGIC:
            return archive
    out = archive.with_suffix(".tar")
    try:
        import zstandard
    except ImportError:  # the `zstd` program does the same
        zstandard = None
    if zstandard is not None:
        with archive.open("rb") as src, out.open("wb") as dst:
            zstandard.ZstdDecompressor().copy_stream(src, dst)
        return out
    program = shutil.which("zstd")
    if program is None:
        raise TrainingError(
            f"{archive} is zstd-compressed and neither the `zstandard` package nor the `zstd` "
            "program is installed; install one (`pip install zstandard`)"
        )
    command = [program, "-d", "-q", "-f", "-o", str(out), str(archive)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise TrainingError(f"{archive} is not a valid zstd archive: {done.stderr.strip()}")
    return out
