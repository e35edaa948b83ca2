"""What a self-hosted target serves: persona slug -> adapter location, kept in a JSON file.

The `local` and `vllm` targets serve adapters by the persona's slug; the manifest is what a
restarted server (`foundry serve`, or the vLLM launch spec) loads, so a deploy survives restarts.
Written atomically: a failed deploy never leaves a half-written manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

from foundry.atomic import write_text_atomic


def read_manifest(path: Path) -> dict[str, str]:
    """slug -> adapter location; empty when nothing was deployed."""
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()))


def set_served(path: Path, slug: str, location: str | None) -> dict[str, str]:
    """Serve `location` as `slug` (None: serve nothing as `slug`); the new manifest."""
    served = read_manifest(path)
    if location is None:
        served.pop(slug, None)
    else:
        served[slug] = location
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(dict(sorted(served.items())), indent=2) + "\n")
    return served
