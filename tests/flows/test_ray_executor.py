"""Model steps on a real Ray cluster started on this machine: a head and worker nodes with a fake
`gpu` resource, the tiny base, artifacts through a shared folder (an fsspec URL).

Placement by resources, the same adapter bytes as the local executor, a worker node lost
mid-training survived by resuming on another node, and a step past its time limit cancelled.
The retrain flow with `executor: ray` is in tests/flows/test_retrain_flow.py (the edited run).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from pathlib import Path

import pytest

from foundry.config import load_config
from tasks.train import train_persona  # imports Prefect, whose logging setup caplog must follow
from tests.conftest import SAMPLE_DIR, make_project

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")  # a dev dependency: present wherever the suite runs

SLUG = "jonah-okafor"


def _config_text(shared: Path, scratch: Path, sft_steps: int, every: int) -> str:
    return f"""
personas: {{include: [jonah-okafor, tobias-renn]}}
base_model: {{tiny: {{pretrain_steps: 30, hidden_size: 64, intermediate_size: 128,
  vocab_size: 1000, batch_size: 8}}}}
training:
  lora: {{r: 4, alpha: 8, dropout: 0.0}}
  sft: {{max_steps: {sft_steps}, eval_steps: {every}, batch_size: 4, max_length: 96,
    early_stopping_patience: 0}}
  dpo: {{max_steps: 2, eval_steps: 2, batch_size: 2, max_length: 96}}
paths: {{shared_url: "file://{shared}"}}
orchestration:
  executor: ray
  ray: {{scratch_dir: "{scratch}", train: {{num_cpus: 1, resources: {{gpu: 1}}}}}}
"""


def _project(root: Path, sft_steps: int = 4, every: int = 2):
    """The sample's project on the tiny base; SFT checkpoints `every` steps."""
    from foundry.training.base_model import ensure_base

    text = _config_text(root / "shared", root / "scratch", sft_steps, every)
    make_project(root, config_text=text)
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    return config


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()


def _train(config, log=None, timeout=None):
    from foundry.orchestration.executors import model_steps, run_model_step
    from foundry.training.adapter_training import work_root

    with model_steps(config):
        return run_model_step(
            "train", train_persona, str(config.source), SLUG, "rev-1", log=log, timeout=timeout,
            outputs=[config.adapter_dir(SLUG, "sft"), config.adapter_dir(SLUG, "dpo")],
            checkpoints=work_root(config, SLUG),
        )  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    """A head without the `gpu` resource and one worker node with it."""
    from ray.cluster_utils import Cluster

    local = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"},
    )
    gpu_node = local.add_node(num_cpus=1, resources={"gpu": 1}, node_ip_address="127.0.0.1")
    ray.init(address=local.address, log_to_driver=False)
    yield local, gpu_node
    ray.shutdown()
    local.shutdown()


def test_training_runs_on_the_node_with_its_resource_and_equals_the_local_executor(
    cluster, tmp_path, caplog
):
    import torch

    _, gpu_node = cluster
    config = _project(tmp_path / "project")
    relay = logging.getLogger("foundry.tests.ray-relay")
    with caplog.at_level(logging.INFO, logger=relay.name):
        result = _train(config, log=relay)
    on_ray = {stage: _digest(config.adapter_dir(SLUG, stage)) for stage in ("sft", "dpo")}
    # Installed in the project (fetched from the shared folder), paths pointing at it.
    assert Path(result["dpo"]["path"]) == config.adapter_dir(SLUG, "dpo")
    node_lines = [r.getMessage() for r in caplog.records if "ran on Ray node" in r.getMessage()]
    assert node_lines == [f"train ran on Ray node {gpu_node.node_id[:12]}"]
    # The node's own log lines reached this logger while it trained.
    assert any("sft adapter: 4 steps" in r.getMessage() for r in caplog.records)
    # It trained in the node's scratch copy, never in the project folder.
    scratch = next((tmp_path / "project" / "scratch" / "foundry-ray").iterdir())
    assert _digest(scratch / ".foundry" / "adapters" / SLUG / "dpo") == on_ray["dpo"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray task's torch threads: its num_cpus
    try:
        train_persona(str(config.source), SLUG, "rev-1")
    finally:
        torch.set_num_threads(threads)
    local = {stage: _digest(config.adapter_dir(SLUG, stage)) for stage in ("sft", "dpo")}
    assert on_ray == local


def test_a_worker_node_lost_mid_training_is_retried_on_another_and_resumes(cluster, tmp_path):
    from foundry.orchestration.shared_store import SharedStore
    from foundry.training.adapter_training import work_root

    local, gpu_node = cluster
    config = _project(tmp_path / "project", sft_steps=150, every=5)
    store = SharedStore(config.paths.shared_url)
    scope = work_root(config, SLUG).relative_to(config.root).as_posix()
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["result"] = _train(config)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    runner = threading.Thread(target=train)
    runner.start()
    deadline = time.monotonic() + 240
    while not store.checkpoints(scope) and time.monotonic() < deadline and runner.is_alive():
        time.sleep(0.2)
    assert store.checkpoints(scope), outcome.get("error", "no checkpoint reached the store")
    local.remove_node(gpu_node, allow_graceful=False)  # the retry waits for a `gpu` node
    spare = local.add_node(num_cpus=1, resources={"gpu": 1}, node_ip_address="127.0.0.1")
    runner.join(timeout=300)
    assert not runner.is_alive()
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["result"]["sft"]["summary"]
    assert summary["resumed_from_step"] >= 5 and summary["steps"] == 150
    assert store.checkpoints(scope) == {}  # dropped once the step succeeded
    local.remove_node(spare)
    local.add_node(num_cpus=1, resources={"gpu": 1}, node_ip_address="127.0.0.1")


def test_a_step_past_its_time_limit_is_cancelled_on_the_cluster(cluster, tmp_path):
    config = _project(tmp_path / "project", sft_steps=400)
    with pytest.raises(TimeoutError, match="train ran past 3 s; its Ray task is cancelled"):
        _train(config, timeout=3)
    deadline = time.monotonic() + 60
    while ray.available_resources().get("gpu", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("gpu", 0) == 1  # the node's slot is free again
    assert not config.adapter_dir(SLUG, "sft").exists()


def test_a_step_that_raises_fails_with_its_own_error_type_and_message(cluster, tmp_path):
    from foundry.orchestration.executors import model_steps, run_model_step
    from foundry.training.artifacts import TrainingError
    from tasks.train import train_adapter_task

    config = _project(tmp_path / "project")
    with model_steps(config), pytest.raises(TrainingError, match="unknown training stage 'rl'"):
        run_model_step("train", train_adapter_task.fn, str(config.source), SLUG, "rl")
    assert not config.adapter_dir(SLUG, "sft").exists()
