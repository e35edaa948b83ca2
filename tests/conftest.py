"""Shared fixtures. Prefect and DVC state is isolated per test session before either is imported."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="foundry-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DVC_NO_ANALYTICS"] = "1"
# Ray clusters the tests start listen on loopback only, and report no usage statistics.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("FOUNDRY_CONFIG", None)
for _name in [n for n in os.environ if n.startswith("FOUNDRY_") and "__" in n]:
    os.environ.pop(_name)

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "examples" / "sample"
FAULTLINE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "faultline"
# A tiny base and a few training steps: enough for the pipeline to run end to end in seconds.
TINY_TRAINING = """
base_model: {tiny: {pretrain_steps: 10, hidden_size: 64, intermediate_size: 128,
  vocab_size: 800, batch_size: 4}}
training:
  lora: {r: 4, alpha: 8}
  sft: {max_steps: 2, eval_steps: 2, batch_size: 4, max_length: 96}
  dpo: {max_steps: 2, eval_steps: 2, batch_size: 2, max_length: 96}
evaluation: {prompts_per_persona: 2, max_conflicts: 2, heldout_items: 3, max_new_tokens: 12,
  embeddings: tfidf}
"""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--data-dir",
        default=str(SAMPLE_DIR),
        help="Persona data folder checked by tests/data (default: the shipped sample).",
    )


@pytest.fixture
def data_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.getoption("--data-dir"))


def make_project(root: Path, *, git: bool = False, config_text: str = "") -> Path:
    """A project folder with the sample under examples/sample and a foundry.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SAMPLE_DIR, root / "examples" / "sample")
    (root / "foundry.yaml").write_text(config_text)
    if git:
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        (root / ".gitignore").write_text("/data/\n.foundry/\n")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the sample seeded into data/ (no DVC)."""
    root = make_project(tmp_path / "project")
    shutil.copytree(SAMPLE_DIR, root / "data")
    return root


@pytest.fixture
def config(project: Path):
    from foundry.config import load_config

    return load_config(project / "foundry.yaml")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need CUDA; where it is absent they are reported as skipped, not run."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    reason = pytest.mark.skip(reason="needs a CUDA GPU (run on the GPU machine)")
    for item in gpu_items:
        item.add_marker(reason)
