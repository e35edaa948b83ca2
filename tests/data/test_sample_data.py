"""Contracts on a persona data folder (default: the shipped sample; `--data-dir` for another)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from foundry.config import load_config
from foundry.data.validation import validate_personas

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def summary(data_dir: Path, tmp_path: Path):
    (tmp_path / "foundry.yaml").write_text(f"paths:\n  data_dir: {data_dir}\n")
    return validate_personas(load_config(tmp_path / "foundry.yaml"))


def test_data_has_no_errors(summary):
    errors = [str(p) for p in summary.problems if p.level == "error"]
    assert errors == []


def test_every_persona_has_enough_items_and_every_split(summary):
    assert len(summary.personas) >= 4
    for persona in summary.personas:
        stats = persona.stats
        assert stats.items >= 80, persona.slug
        assert stats.train > 0 and stats.validation > 0 and stats.test > 0, persona.slug


def test_ids_are_unique_and_no_document_is_in_two_splits(summary):
    for persona in summary.personas:
        ids = [item.id for item in persona.items]
        assert len(ids) == len(set(ids)), persona.slug
        splits: dict[str, set[str]] = {}
        for item in persona.items:
            splits.setdefault(item.document or item.id, set()).add(item.split)
        assert all(len(seen) == 1 for seen in splits.values()), persona.slug
        assert all(item.text.strip() for item in persona.items)


def test_contracts_carry_reasoning_constitution_style_and_positions(summary):
    for persona in summary.personas:
        contract = persona.contract
        assert contract is not None, persona.slug
        assert contract.reasoning_method and len(contract.reasoning_method.steps) >= 3
        assert len(contract.constitution) >= 3
        assert contract.style.markers and contract.style.avoid
        with_counterclaims = [p for p in contract.positions if p.counterclaim]
        assert len(with_counterclaims) >= 8, persona.slug


def test_personas_reason_differently(summary):
    methods = {p.contract.reasoning_method.name for p in summary.personas}
    assert len(methods) == len(summary.personas)
    # Shared claims must be contested: some persona agrees and some disagrees.
    stances: dict[str, set[str]] = {}
    for persona in summary.personas:
        for position in persona.contract.positions:
            stances.setdefault(position.claim, set()).add(position.stance)
    contested = [claim for claim, seen in stances.items() if seen == {"agree", "disagree"}]
    assert len(contested) >= 6


def test_topics_are_plentiful_and_unique(summary):
    assert len(summary.topics) >= 40
    assert len({t.id for t in summary.topics}) == len(summary.topics)


@pytest.mark.slow
def test_committed_data_dvc_matches_the_shipped_sample(tmp_path):
    """`foundry init` on a fresh clone must reproduce the data version committed in data.dvc.

    The committed file is read from git (HEAD), not the working tree: `make run` versions the
    synthetic data it adds, which rightly moves the working tree's data.dvc to a new version.
    """
    from dvc.repo import Repo

    shutil.copytree(REPO_ROOT / "examples" / "sample", tmp_path / "data")
    Repo.init(str(tmp_path), no_scm=True).close()
    repo = Repo(str(tmp_path))
    repo.add(str(tmp_path / "data"))
    repo.close()
    computed = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]
    committed = yaml.safe_load(_committed_text(REPO_ROOT / "data.dvc"))["outs"][0]
    assert computed["md5"] == committed["md5"]
    assert computed["nfiles"] == committed["nfiles"]


def _committed_text(path: Path) -> str:
    """`path` as committed at HEAD; the working-tree file outside a git checkout."""
    shown = subprocess.run(
        ["git", "-C", str(path.parent), "show", f"HEAD:./{path.name}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return shown.stdout if shown.returncode == 0 else path.read_text()
