"""`training.backend: together`: SFT then DPO through the real `together` SDK against a fake API.

The fake serves, as the trained adapter, a real PEFT LoRA adapter of a tiny random Llama (plus
a pickled `training_args.bin` that must never reach the adapter folder).
"""

from __future__ import annotations

import json
import logging

import pytest

from foundry.data.stance import first_prompt_each, position_rows
from foundry.data.validation import validate_personas
from foundry.synthesis.pair_sets import load_pairs
from foundry.training.adapter_training import train_dpo, train_sft
from foundry.training.adapters import check_adapter_folder
from foundry.training.artifacts import TrainingError, TrainingSummary
from foundry.training.backends import resolve_backend
from foundry.training.datasets import dpo_examples, sft_examples
from tests.fakes.together_finetune_server import (
    FAKE_BASE_MODEL,
    VALID_API_KEY,
    FakeTogetherFinetuneServer,
)

SLUG = "tobias-renn"
WRONG_KEY = "wrong-together-key-for-the-fake-42"


def _tiny_llama() -> tuple[object, object]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config), config


@pytest.fixture(scope="module")
def adapter_files(tmp_path_factory) -> dict[str, bytes]:
    """A real PEFT LoRA adapter of a tiny random Llama, as Together's archive would hold it."""
    from peft import LoraConfig, get_peft_model

    model, _ = _tiny_llama()
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    folder = tmp_path_factory.mktemp("together-adapter")
    get_peft_model(model, lora).save_pretrained(folder, safe_serialization=True)
    files = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    files["training_args.bin"] = b"\x80\x04pickled trainer arguments"
    return files


@pytest.fixture
def server(config, adapter_files, monkeypatch):
    """The fake, the environment pointing the SDK at it, and `config` set to train on it."""
    for name in ("FOUNDRY_TOGETHER_API_KEY", "FOUNDRY_TOGETHER_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    config.training.together.poll_s = 0.01
    config.training.backend = "together"
    config.base_model.name = FAKE_BASE_MODEL
    with FakeTogetherFinetuneServer(polls_before_done=3) as fake:
        fake.adapter_files = dict(adapter_files)
        monkeypatch.setenv("TOGETHER_API_KEY", VALID_API_KEY)
        monkeypatch.setenv("TOGETHER_BASE_URL", fake.base_url)
        yield fake


def _summary(config) -> TrainingSummary:
    folder = config.adapter_dir(SLUG, "sft")
    return TrainingSummary.model_validate_json((folder / "training_summary.json").read_text())


def test_sft_then_dpo_install_adapters_and_upload_together_formats(config, server, caplog):
    caplog.set_level(logging.DEBUG)
    config.training.lora.target_modules = ["q_proj", "v_proj"]
    steps: list[tuple[int, int]] = []
    sft = train_sft(config, SLUG, progress=lambda step, total, logs: steps.append((step, total)))
    server.archive_format = "zstd"  # Together's usual download format; SFT's came as tar.gz
    dpo = train_dpo(config, SLUG, pairs=load_pairs(config, SLUG), data_rev="rev-1")

    # Adapter folders: the served LoRA, the summary, no pickle; they load onto the base.
    for artifact, job_id in ((sft, server.job_ids[0]), (dpo, server.job_ids[1])):
        folder = config.adapter_dir(SLUG, artifact.stage)
        assert artifact.path == folder
        assert sorted(p.name for p in folder.iterdir()) == [
            "adapter_config.json", "adapter_model.safetensors", "training_summary.json",
        ]  # fmt: skip
        weights = (folder / "adapter_model.safetensors").read_bytes()
        assert weights == server.adapter_files["adapter_model.safetensors"]
        check_adapter_folder(folder)
        summary = TrainingSummary.model_validate_json(
            (folder / "training_summary.json").read_text()
        )
        assert summary == artifact.summary
        assert (summary.backend, summary.job_id, summary.base_model) == (
            "together", job_id, FAKE_BASE_MODEL,
        )  # fmt: skip
        assert summary.train_losses == [2.0, 1.0, 0.6667, 0.5] and summary.steps == 4
    assert dpo.summary.data_rev == "rev-1" and steps[-1] == (4, 4)
    from peft import PeftModel

    model, _ = _tiny_llama()
    PeftModel.from_pretrained(model, config.adapter_dir(SLUG, "dpo"))

    # What was uploaded: the persona's examples in Together's chat and preference formats.
    persona = validate_personas(config, [SLUG])
    contract = persona.personas[0].contract
    positions = position_rows(contract, persona.topic_split)
    assert positions  # the contract's positions are taught on Together too
    train, evaluation = sft_examples(
        persona.personas[0], persona.topic_split.framing, None, positions
    )
    assert sft.summary.examples_train == len(train) and sft.summary.examples_eval == len(evaluation)
    sft_rows = server.uploaded_rows(server.file_ids[0])
    assert [row["messages"] for row in sft_rows] == [
        ex["prompt"] + ex["completion"] for ex in train
    ]
    dpo_train, _ = dpo_examples(SLUG, load_pairs(config, SLUG), first_prompt_each(positions))
    dpo_rows = server.uploaded_rows(server.file_ids[1])
    assert len(dpo_rows) == len(dpo_train) > 0
    for row, example in zip(dpo_rows, dpo_train, strict=True):
        assert row == {
            "input": {"messages": example["prompt"]},
            "preferred_output": example["chosen"],
            "non_preferred_output": example["rejected"],
        }

    # The jobs: LoRA settings from the config; DPO continues the SFT job.
    lora = config.training.lora
    expected_type = {
        "type": "Lora", "lora_r": lora.r, "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout, "lora_trainable_modules": "q_proj,v_proj",
    }  # fmt: skip
    sft_job, dpo_job = server.creates
    assert sft_job["model"] == FAKE_BASE_MODEL and "from_checkpoint" not in sft_job
    assert sft_job["training_method"] == {"method": "sft", "train_on_inputs": False}
    assert sft_job["n_epochs"] == 3 and sft_job["learning_rate"] == 2e-5
    assert dpo_job["from_checkpoint"] == server.job_ids[0] and "model" not in dpo_job
    assert dpo_job["training_method"]["method"] == "dpo"
    assert dpo_job["training_method"]["dpo_beta"] == config.training.dpo.beta
    assert dpo_job["n_epochs"] == 1 and dpo_job["learning_rate"] == 5e-6
    assert sft_job["training_type"] == expected_type == dpo_job["training_type"]

    # No state left behind; the key went nowhere but the API's Authorization header.
    assert not list((config.cache_dir / "together").rglob("job.json"))
    assert server.storage_auth_headers == ["", ""]
    assert "Together job" in caplog.text and VALID_API_KEY not in caplog.text
    for path in config.root.rglob("*"):
        assert not path.is_file() or VALID_API_KEY.encode() not in path.read_bytes(), path


def test_failed_job_names_the_job_and_keeps_the_earlier_adapter(config, server):
    train_sft(config, SLUG)
    folder = config.adapter_dir(SLUG, "sft")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    server.fail_next_job("CUDA out of memory on worker 3")
    with pytest.raises(TrainingError) as error:
        train_sft(config, SLUG)
    message = str(error.value)
    assert server.job_ids[1] in message and "CUDA out of memory on worker 3" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert _summary(config).job_id == server.job_ids[0]
    # The failed job is forgotten: the next run pays for a new one.
    train_sft(config, SLUG)
    assert len(server.creates) == 3 and _summary(config).job_id == server.job_ids[2]


def test_a_run_that_dies_after_create_resumes_polling_the_same_job(config, server):
    server.fail_next(500, count=3, route="retrieve")  # the SDK's two retries fail as well
    with pytest.raises(TrainingError) as error:
        train_sft(config, SLUG)
    assert server.job_ids[0] in str(error.value) and "resumes the same job" in str(error.value)
    assert not config.adapter_dir(SLUG, "sft").exists()
    state = next((config.cache_dir / "together").rglob("job.json"))
    assert json.loads(state.read_text())["job_id"] == server.job_ids[0]

    artifact = train_sft(config, SLUG)
    assert len(server.creates) == 1 and len(server.file_ids) == 1
    assert artifact.summary.job_id == server.job_ids[0]


def test_a_job_past_the_timeout_is_left_running_and_resumed(config, server, monkeypatch):
    config.training.together.timeout_s = 1e-9
    with pytest.raises(TrainingError) as error:
        train_sft(config, SLUG)
    message = str(error.value)
    assert server.job_ids[0] in message and "not cancelled" in message and "job.json" in message
    config.training.together.timeout_s = 60.0
    assert train_sft(config, SLUG).summary.job_id == server.job_ids[0]
    assert len(server.creates) == 1


def test_pickled_weights_are_refused_and_nothing_is_installed(config, server, adapter_files):
    server.adapter_files = {
        "adapter_config.json": adapter_files["adapter_config.json"],
        "adapter_model.bin": b"\x80\x04pickled weights",
    }
    with pytest.raises(TrainingError, match="only safetensors") as error:
        train_sft(config, SLUG)
    assert server.job_ids[0] in str(error.value)
    assert not config.adapter_dir(SLUG, "sft").exists()


def test_tiny_base_and_missing_key_are_refused_before_any_call(config, server, monkeypatch):
    config.base_model.name = "tiny"
    with pytest.raises(TrainingError, match="`base_model.name`") as error:
        resolve_backend(config)
    assert "Together" in str(error.value)
    config.base_model.name = FAKE_BASE_MODEL
    monkeypatch.delenv("TOGETHER_API_KEY")
    with pytest.raises(TrainingError, match="TOGETHER_API_KEY is not set"):
        train_sft(config, SLUG)
    assert server.file_ids == [] and server.creates == []


def test_a_wrong_key_is_named_but_never_shown(config, server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TOGETHER_API_KEY", WRONG_KEY)
    with pytest.raises(TrainingError, match="set TOGETHER_API_KEY to a valid key") as error:
        train_sft(config, SLUG)
    assert WRONG_KEY not in str(error.value) and WRONG_KEY not in caplog.text
    assert not config.adapter_dir(SLUG, "sft").exists()
