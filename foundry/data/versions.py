"""Data versions with DVC: seed `data/`, track it as one directory (`data.dvc`), hash personas.

Public entry points: `init_project(config, empty=False)` (pull, or seed from the sample, or start
empty; set up DVC and a remote; version), `version_data(config)` (the `dvc add` + push that returns
the data version), `read_data_version(config)` and `persona_content_hash(persona_dir)`. The data
version is the md5 DVC records for the `data/` directory; each persona also gets a content hash so
later stages can cache per persona. The repository itself (set-up, remote, quiet output) is
`foundry.data.dvc_repo`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import yaml
from pydantic import BaseModel

from foundry.atomic import replace_dir, staged_dir
from foundry.config import FoundryConfig
from foundry.data.dvc_repo import configured_remote, dvc_repo, ensure_dvc
from foundry.data.personas import discover_personas
from foundry.errors import VersioningError
from foundry.logs import get_logger

logger = get_logger(__name__)

DVC_FILE = "data.dvc"


class DataVersion(BaseModel):
    """What a run trained on: the DVC directory md5 plus a content hash per persona."""

    data_rev: str
    nfiles: int
    size_bytes: int
    personas: dict[str, str]
    pushed: bool = False


class InitResult(BaseModel):
    seeded_from: str  # "examples", "remote", "empty" (--empty) or "" when data/ had personas
    pull_note: str = ""  # why data.dvc's version was not pulled, when it was not
    dvc_initialised: bool
    remote_url: str
    version: DataVersion


def seed_data(config: FoundryConfig) -> bool:
    """Copy the sample personas into an empty data folder (staged, then moved); True if seeded."""
    if discover_personas(config.personas_dir):
        return False
    source = config.examples_dir
    if not (source / "personas").is_dir():
        raise VersioningError(
            f"cannot seed {config.data_dir}: {source}/personas does not exist; set "
            "`paths.examples_dir` in foundry.yaml, or run `foundry import faultline DIR`"
        )
    with staged_dir(config.data_dir.parent, prefix=".data-seed-") as stage:
        target = stage / "data"
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        if config.data_dir.exists():
            for entry in config.data_dir.iterdir():  # keep what an empty data/ already had
                if not (target / entry.name).exists():
                    shutil.move(str(entry), target / entry.name)
        replace_dir(target, config.data_dir)
    return True


def pull_data(config: FoundryConfig) -> tuple[bool, str]:
    """Fetch `data/` from the remote as recorded in data.dvc.

    Returns:
        (whether personas arrived, why not when they did not). A data.dvc whose version neither
        the DVC cache nor the remote holds is the normal case in a fresh clone: said calmly.
    """
    from dvc.exceptions import CheckoutError, DvcException

    dvc_file = config.root / DVC_FILE
    if not dvc_file.is_file():
        return False, ""
    # DVC's own missing-cache WARNING (from dvc_data) is the fresh-clone case, said below in one
    # line instead.
    data_logger = logging.getLogger("dvc_data")
    saved_level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    try:
        with dvc_repo(config) as repo:
            repo.pull(targets=[str(dvc_file)])
    except CheckoutError:
        out = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", [{}])[0]
        rev = str(out.get("md5", "")).removesuffix(".dir")[:8]
        return False, f"data.dvc's version {rev} is not in the DVC cache or remote yet"
    except DvcException as exc:
        logger.warning("could not pull data from the DVC remote (%s); seeding from the sample", exc)
        return False, "the DVC remote could not be read"
    finally:
        data_logger.setLevel(saved_level)
    return bool(discover_personas(config.personas_dir)), ""


def version_data(config: FoundryConfig, push: bool | None = None) -> DataVersion:
    """`dvc add data` (and push), then return the data version and a hash per persona.

    Raises:
        VersioningError: the data folder is missing or DVC failed.
    """
    from dvc.exceptions import DvcException

    if not config.data_dir.is_dir():
        raise VersioningError(f"{config.data_dir} does not exist; run `foundry init` first")
    if not (config.root / ".dvc").is_dir():
        ensure_dvc(config)
    push = config.versioning.push if push is None else push
    try:
        with dvc_repo(config) as repo:
            repo.add(str(config.data_dir))
            if push:
                repo.push(targets=[str(config.root / DVC_FILE)])
    except DvcException as exc:
        raise VersioningError(f"DVC failed on {config.data_dir}: {exc}") from exc
    version = read_data_version(config, pushed=push)
    logger.info(
        "data version %s (%d files, %d personas)",
        version.data_rev,
        version.nfiles,
        len(version.personas),
    )
    return version


def read_data_version(config: FoundryConfig, pushed: bool = False) -> DataVersion:
    """Read `data.dvc` without running DVC and hash each persona's folder."""
    path = config.root / DVC_FILE
    if not path.is_file():
        raise VersioningError(f"{path} not found; run `foundry init` to version the data")
    out = (yaml.safe_load(path.read_text()) or {}).get("outs", [{}])[0]
    return DataVersion(
        data_rev=str(out.get("md5", "")).removesuffix(".dir"),
        nfiles=int(out.get("nfiles", 0)),
        size_bytes=int(out.get("size", 0)),
        personas={
            slug: persona_content_hash(config.personas_dir / slug)
            for slug in discover_personas(config.personas_dir)
        },
        pushed=pushed,
    )


def persona_content_hash(persona_dir: Path) -> str:
    """sha256 over the relative paths and bytes of every file of a persona, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in persona_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(persona_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def init_project(config: FoundryConfig, empty: bool = False) -> InitResult:
    """Make a project ready: data present (pulled, seeded or empty), DVC set up, data versioned.

    Args:
        config: the project configuration (`paths`, `versioning`).
        empty: start `data/` with no personas and no topics instead of seeding it from the sample,
            for users who bring their own; personas already in `data/` or versioned in
            `data.dvc` are still kept or pulled.

    Raises:
        VersioningError: the sample is missing (without `empty`) or DVC failed.
    """
    created = ensure_dvc(config)
    seeded_from, pull_note = "", ""
    if not discover_personas(config.personas_dir):
        pulled, pull_note = pull_data(config)
        seeded_from = "remote" if pulled else ""
        if not seeded_from and empty:
            config.personas_dir.mkdir(parents=True, exist_ok=True)
            seeded_from = "empty"
        elif not seeded_from and seed_data(config):
            seeded_from = "examples"
    version = version_data(config)
    return InitResult(
        seeded_from=seeded_from,
        pull_note=pull_note,
        dvc_initialised=created,
        remote_url=configured_remote(config),
        version=version,
    )
