"""DVC versioning for real, in temporary git repositories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from foundry.config import load_config
from foundry.data.versions import (
    init_project,
    persona_content_hash,
    read_data_version,
    version_data,
)
from tests.conftest import make_project

pytestmark = pytest.mark.slow


@pytest.fixture
def git_config(tmp_path: Path):
    root = make_project(tmp_path / "repo", git=True)
    return load_config(root / "foundry.yaml")


def test_init_seeds_data_sets_up_dvc_and_pushes(git_config):
    result = init_project(git_config)

    root = git_config.root
    assert result.seeded_from == "examples"
    assert result.dvc_initialised
    assert sorted(result.version.personas) == sorted(
        p.name for p in (root / "examples/sample/personas").iterdir()
    )
    dvc_file = yaml.safe_load((root / "data.dvc").read_text())
    assert dvc_file["outs"][0]["md5"] == f"{result.version.data_rev}.dir"
    remote = root / ".foundry" / "dvc-remote"
    assert any(remote.rglob("*")), "push left the local remote empty"
    config_text = (root / ".dvc" / "config").read_text()
    assert "analytics = False" in config_text
    assert "url = ../.foundry/dvc-remote" in config_text
    assert (root / ".foundry" / "dvc-site-cache").is_dir()
    assert "DVC_SITE_CACHE_DIR" not in os.environ


def test_editing_one_persona_changes_data_version_and_only_its_hash(git_config):
    before = init_project(git_config).version
    corpus = git_config.persona_dir("tobias-renn") / "corpus" / "posts.jsonl"
    corpus.write_text(
        corpus.read_text() + '{"id": "tr-extra", "text": "Count the players before the payoffs."}\n'
    )

    after = version_data(git_config)

    assert after.data_rev != before.data_rev
    changed = {slug for slug in before.personas if before.personas[slug] != after.personas[slug]}
    assert changed == {"tobias-renn"}


def test_versioning_twice_without_changes_keeps_the_version(git_config):
    first = init_project(git_config).version
    second = version_data(git_config)
    assert second.data_rev == first.data_rev
    assert second.personas == first.personas


def test_init_keeps_existing_personas_and_pulls_nothing(git_config):
    init_project(git_config)
    marker = git_config.persona_dir("jonah-okafor") / "contract.yaml"
    original = marker.read_bytes()

    again = init_project(git_config)

    assert again.seeded_from == ""
    assert not again.dvc_initialised
    assert marker.read_bytes() == original


def test_init_in_a_fresh_clone_pulls_data_from_the_remote(git_config, tmp_path):
    init_project(git_config)
    extra = git_config.persona_dir("priya-castellanos") / "corpus" / "extra.txt"
    extra.write_text("A base rate of one is not a base rate. Count the sample first.\n")
    pushed = version_data(git_config)
    # A "clone": same code and .dvc/, data.dvc pointing at the pushed version, no data/.
    clone = make_project(tmp_path / "clone", git=True)
    for name in ("data.dvc", ".dvcignore"):
        (clone / name).write_bytes((git_config.root / name).read_bytes())
    (clone / ".dvc").mkdir()
    (clone / ".dvc" / "config").write_text(
        (git_config.root / ".dvc" / "config")
        .read_text()
        .replace("../.foundry/dvc-remote", str(git_config.root / ".foundry" / "dvc-remote"))
    )
    clone_config = load_config(clone / "foundry.yaml")

    result = init_project(clone_config)

    assert result.seeded_from == "remote"
    assert result.version.data_rev == pushed.data_rev
    assert (clone / "data/personas/priya-castellanos/corpus/extra.txt").read_text() == (
        extra.read_text()
    )


def test_init_in_a_fresh_clone_of_the_repository_seeds_calmly(git_config, tmp_path, capfd):
    init_project(git_config)
    # The repository's own case: data.dvc committed, but no DVC cache and an empty remote.
    clone = make_project(tmp_path / "clone", git=True)
    (clone / "data.dvc").write_bytes((git_config.root / "data.dvc").read_bytes())
    capfd.readouterr()

    result = init_project(load_config(clone / "foundry.yaml"))

    assert result.seeded_from == "examples"
    rev = result.version.data_rev
    assert result.pull_note == f"data.dvc's version {rev[:8]} is not in the DVC cache or remote yet"
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err and "cache files do not exist" not in out + err


def test_persona_hash_depends_on_paths_and_bytes(tmp_path):
    persona = tmp_path / "p"
    (persona / "corpus").mkdir(parents=True)
    (persona / "corpus" / "a.txt").write_text("one")
    first = persona_content_hash(persona)
    (persona / "corpus" / "a.txt").rename(persona / "corpus" / "b.txt")
    renamed = persona_content_hash(persona)
    (persona / "corpus" / "b.txt").write_text("two")
    edited = persona_content_hash(persona)
    assert len({first, renamed, edited}) == 3


def test_reading_a_version_without_data_dvc_says_to_run_init(config):
    from foundry.errors import VersioningError

    with pytest.raises(VersioningError, match="foundry init"):
        read_data_version(config)


def test_init_without_git_uses_dvc_without_scm(tmp_path):
    root = make_project(tmp_path / "nogit")
    result = init_project(load_config(root / "foundry.yaml"))
    assert result.seeded_from == "examples"
    assert (root / "data.dvc").is_file()
    assert "no_scm = True" in (root / ".dvc" / "config").read_text().replace("true", "True")
