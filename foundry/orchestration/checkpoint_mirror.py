"""Training checkpoints copied to shared storage as they are written, so a step retried on another
node after its node was lost resumes where the lost one stopped instead of starting over.

The trainer writes `checkpoint-N/` folders in its work folder (`<cache_dir>/work/<slug>/...`) and
resumes from the last one it finds there (`foundry.training.trainers.fit_and_install`); the mirror
only has to put them there. A checkpoint is uploaded once its `trainer_state.json` (written last)
exists and its files have stopped changing between two looks.

Public entry points: `mirrored_checkpoints(store, root, scope)` (around a step) and
`restore_checkpoints(store, root, scope)` (before it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from foundry.logs import get_logger
from foundry.orchestration.shared_store import SharedStore

logger = get_logger(__name__)

LOOK_EVERY_S = 1.0
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def restore_checkpoints(store: SharedStore, root: Path, scope: str) -> int:
    """Put the newest stored checkpoint of each work folder under `root/scope`; how many."""
    newest: dict[str, tuple[int, str]] = {}
    stored = store.checkpoints(scope)
    for relative in stored:
        folder, _, name = relative.rpartition("/")
        match = _CHECKPOINT.match(name)
        if match and int(match.group(1)) > newest.get(folder, (-1, ""))[0]:
            newest[folder] = (int(match.group(1)), relative)
    for _, relative in newest.values():
        store.get_tree(stored[relative], root)
        logger.info("restored checkpoint %s from %s (a previous attempt's)", relative, store.url)
    return len(newest)


@contextmanager
def mirrored_checkpoints(store: SharedStore, root: Path, scope: str) -> Iterator[None]:
    """Upload each complete checkpoint under `root/scope` while the body trains."""
    stop = threading.Event()
    seen: dict[str, tuple] = {}
    sent: set[str] = set()

    def look() -> None:
        for state in sorted((root / scope).glob("**/checkpoint-*/trainer_state.json")):
            folder = state.parent
            relative = folder.relative_to(root).as_posix()
            if relative in sent:
                continue
            shape = tuple(sorted((p.name, p.stat().st_size) for p in folder.iterdir()))
            if seen.get(relative) != shape:  # still being written, or first look
                seen[relative] = shape
                continue
            store.put_checkpoint(root, relative)
            sent.add(relative)

    def loop() -> None:
        while not stop.wait(LOOK_EVERY_S):
            try:
                look()
            except (OSError, ValueError) as exc:  # a checkpoint rotated away mid-look
                logger.debug("checkpoint mirror: %s", exc)

    thread = threading.Thread(target=loop, name="checkpoint-mirror", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
