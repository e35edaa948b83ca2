"""The project's DVC repository: set it up, open it quietly, and know its remote.

Public entry points: `ensure_dvc(config)` (initialise DVC in the project root and point it at the
remote), `dvc_repo(config)` (the repo, opened inside `quiet_dvc`), `remote_url(config)` and
`configured_remote(config)`. DVC analytics are off and DVC's site cache lives under the project's
cache folder; DVC is imported inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from foundry.config import FoundryConfig
from foundry.logs import get_logger

logger = get_logger(__name__)


@contextlib.contextmanager
def quiet_dvc(config: FoundryConfig) -> Iterator[None]:
    """Analytics off, DVC's site cache inside the project, its console output sent to debug logs."""
    env = {
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(config.cache_dir / "dvc-site-cache"),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    captured = io.StringIO()
    dvc_logger = logging.getLogger("dvc")
    saved_level = dvc_logger.level
    dvc_logger.setLevel(logging.WARNING)  # its INFO lines are git hints meant for its own CLI
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            yield
    finally:
        dvc_logger.setLevel(saved_level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if captured.getvalue().strip():
            logger.debug("dvc: %s", captured.getvalue().strip())


@contextlib.contextmanager
def dvc_repo(config: FoundryConfig) -> Iterator[Any]:
    """The project's DVC repo, opened and closed inside `quiet_dvc`."""
    from dvc.repo import Repo

    with quiet_dvc(config):
        repo = Repo(str(config.root))
        try:
            yield repo
        finally:
            repo.close()


def remote_url(config: FoundryConfig) -> str:
    """The remote foundry.yaml asks for, or the default local folder under the cache dir."""
    return config.versioning.remote_url or str(config.cache_dir / "dvc-remote")


def configured_remote(config: FoundryConfig) -> str:
    """The URL of the remote DVC will push to, as .dvc/config holds it (resolved if a path)."""
    with dvc_repo(config) as repo:
        name = repo.config["core"].get("remote", config.versioning.remote_name)
        url = str(repo.config["remote"].get(name, {}).get("url", ""))
    if url and "://" not in url and not Path(url).is_absolute():
        url = str((config.root / ".dvc" / url).resolve())
    return url


def ensure_dvc(config: FoundryConfig) -> bool:
    """Initialise DVC in the project root if needed and point it at the remote; True if created."""
    from dvc.repo import Repo

    created = False
    if not (config.root / ".dvc").is_dir():
        git_root = _git_root(config.root)
        with quiet_dvc(config):
            Repo.init(
                str(config.root),
                no_scm=git_root is None,
                subdir=git_root is not None and git_root != config.root,
            ).close()
        created = True
    name = config.versioning.remote_name
    with dvc_repo(config) as repo, repo.config.edit() as conf:
        conf["core"]["analytics"] = False
        # foundry.yaml wins when it names a remote; otherwise keep what .dvc/config already has.
        if config.versioning.remote_url or name not in conf["remote"]:
            conf["remote"][name] = {"url": _relative_to_cwd(remote_url(config))}
        conf["core"]["remote"] = name
    return created


def _relative_to_cwd(url: str) -> str:
    # DVC reads a relative path against the working directory and stores it relative to .dvc/,
    # which keeps the committed .dvc/config valid in every clone.
    if "://" in url:
        return url
    return os.path.relpath(Path(url).resolve(), Path.cwd())


def _git_root(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None
