"""SFT then DPO LoRA training on a small tiny base: artifacts, reload, resume and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from foundry.config import load_config
from foundry.data.validation import validate_personas
from foundry.errors import ConfigError
from foundry.training.artifacts import TrainingError, TrainingSummary
from foundry.training.datasets import TrainingDataError, sft_examples
from tests.conftest import SAMPLE_DIR, make_project

PERSONAS = ["jonah-okafor", "tobias-renn"]
SFT_STEPS, DPO_STEPS = 4, 2
# Small sizes keep the module fast: the base pretrains 30 steps; SFT checkpoints every 2 steps.
CONFIG = f"""
personas: {{include: [{", ".join(PERSONAS)}]}}
base_model: {{tiny: {{pretrain_steps: 30, hidden_size: 64, intermediate_size: 128,
  vocab_size: 1000, batch_size: 8}}}}
training:
  lora: {{r: 4, alpha: 8, dropout: 0.0}}
  sft: {{max_steps: {SFT_STEPS}, eval_steps: 2, batch_size: 4, max_length: 96}}
  dpo: {{max_steps: {DPO_STEPS}, eval_steps: 2, batch_size: 2, max_length: 96}}
"""
ADAPTER_FILES = {
    "adapter_config.json",
    "adapter_model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "training_summary.json",
}


def _project(root: Path, config_text: str = CONFIG) -> Path:
    make_project(root, config_text=config_text)
    shutil.copytree(SAMPLE_DIR, root / "data")
    return root


def _fresh_base(config):
    from foundry.training.base_model import LoadedBase
    from foundry.training.tiny_cache import latest_tiny
    from foundry.training.tiny_model import load_tiny_folder

    folder = latest_tiny(config)
    model, tokenizer = load_tiny_folder(folder)
    return LoadedBase(model=model, tokenizer=tokenizer, name="tiny", path=folder, is_tiny=True)


def _probe(tokenizer):
    messages = [{"role": "user", "content": "Debate prompt: will bitcoin replace gold?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text + "The payoff matrix says", return_tensors="pt")


def _logits(model, inputs):
    import torch

    model.eval()
    with torch.no_grad():
        return model(**inputs).logits


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both personas trained once (SFT then DPO); keeps in-memory models and outputs for checks."""
    import torch

    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo, train_sft
    from foundry.training.base_model import ensure_base
    from tasks.train import train_adapter_task

    # One thread: the models are tiny, and two threads on a busy 2-core runner thrash (10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    root = _project(tmp_path_factory.mktemp("train") / "project")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    first, second = PERSONAS
    sft_base, dpo_base = _fresh_base(config), _fresh_base(config)
    progress_calls: list[tuple[int, int, dict]] = []
    sft = {
        first: train_sft(
            config,
            first,
            base=sft_base,
            data_rev="rev-1",
            progress=lambda *a: progress_calls.append(a),
        )
    }
    pairs = load_pairs(config, first)
    dpo = {first: train_dpo(config, first, pairs=pairs, base=dpo_base, data_rev="rev-1")}
    sft[second] = train_sft(config, second)
    dpo_dict = train_adapter_task.fn(str(root / "foundry.yaml"), second, "dpo", "rev-2")
    probe = _probe(sft_base.tokenizer)
    yield {
        "config": config,
        "sft": sft,
        "dpo": dpo,
        "dpo_dict": dpo_dict,
        "progress": progress_calls,
        "probe": probe,
        "sft_logits": _logits(sft_base.model, probe),
        "dpo_logits": _logits(dpo_base.model, probe),
        "tensors": {
            (slug, stage): _tensors(config.adapter_dir(slug, stage))
            for slug in PERSONAS
            for stage in ("sft", "dpo")
        },
    }
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "dpo"])
@pytest.mark.parametrize("slug", PERSONAS)
def test_adapter_folder_holds_only_this_personas_adapter(trained, slug, stage):
    config = trained["config"]
    folder = config.adapter_dir(slug, stage)
    names = {p.name for p in folder.iterdir()}
    assert ADAPTER_FILES <= names
    assert not (folder / "ref").exists()
    assert not any(p.is_dir() for p in folder.iterdir())
    summary = TrainingSummary.model_validate_json((folder / "training_summary.json").read_text())
    assert (summary.persona, summary.stage, summary.backend) == (slug, stage, "peft")
    assert summary.steps == (SFT_STEPS if stage == "sft" else DPO_STEPS)
    assert summary.train_tokens > 0 and summary.seconds > 0
    assert len(summary.eval_losses) >= 1 and summary.best_eval_loss == min(summary.eval_losses)
    assert summary.resumed_from_step is None
    assert summary.learning_rate == (6e-3 if stage == "sft" else 5e-4)  # the tiny defaults
    assert summary.lora.r == 4 and summary.config_hash == config.config_hash()
    adapter_config = json.loads((folder / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4
    assert Path(adapter_config["base_model_name_or_path"]).name.startswith("tiny-")
    assert all(".ref." not in key for key in trained["tensors"][(slug, stage)])


@pytest.mark.slow
def test_summary_records_examples_and_data_rev(trained):
    from foundry.data.stance import position_rows

    summary = trained["sft"]["jonah-okafor"].summary
    validated = validate_personas(trained["config"], ["jonah-okafor"])
    persona = validated.personas[0]
    rows = position_rows(persona.contract, validated.topic_split)
    taught = sum(r.split == "train" for r in rows)
    assert rows and taught  # the contract's positions are taught beside the corpus
    assert summary.examples_train == persona.stats.train + taught
    assert summary.examples_eval == persona.stats.validation + len(rows) - taught
    assert summary.data_rev == "rev-1"
    assert trained["dpo_dict"]["summary"]["data_rev"] == "rev-2"
    assert trained["dpo_dict"]["path"] == str(trained["config"].adapter_dir("tobias-renn", "dpo"))


@pytest.mark.slow
@pytest.mark.parametrize("slug", PERSONAS)
def test_training_moved_lora_weights_and_dpo_changed_the_sft_adapter(trained, slug):
    import torch

    sft, dpo = trained["tensors"][(slug, "sft")], trained["tensors"][(slug, "dpo")]
    lora_b = [key for key in sft if "lora_B" in key]
    assert len(lora_b) >= 7 * 2  # all-linear: 7 projections in each of 2 layers
    # PEFT initialises lora_B to zeros: non-zero means the optimiser moved it.
    assert all(sft[key].abs().sum() > 0 for key in lora_b)
    assert sft.keys() == dpo.keys()
    assert any(not torch.equal(sft[key], dpo[key]) for key in sft)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_saved_adapter_reloads_with_identical_logits(trained, stage):
    import torch
    from peft import PeftModel

    config = trained["config"]
    base = _fresh_base(config)
    model = PeftModel.from_pretrained(base.model, config.adapter_dir("jonah-okafor", stage))
    reloaded = _logits(model, trained["probe"])
    in_memory = trained[f"{stage}_logits"]
    assert torch.allclose(reloaded, in_memory, atol=1e-6, rtol=0)
    assert not torch.allclose(_logits(_fresh_base(config).model, trained["probe"]), in_memory)


@pytest.mark.slow
def test_progress_reports_steps_and_a_fixed_shape_log_line(trained):
    calls = trained["progress"]
    assert [step for step, _, logs in calls if not logs] == list(range(1, SFT_STEPS + 1))
    assert all(total == SFT_STEPS for _, total, _ in calls)
    train_logs = [logs for _, _, logs in calls if "loss" in logs]
    assert train_logs and all(logs["tokens_per_s"] > 0 for logs in train_logs)
    assert any("eval_loss" in logs for _, _, logs in calls)


@pytest.mark.slow
def test_killed_run_resumes_and_never_touches_the_installed_adapter(trained, caplog):
    import torch

    from foundry.training.adapter_training import train_sft

    config, slug = trained["config"], "tobias-renn"
    folder = config.adapter_dir(slug, "sft")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def kill_after_first_checkpoint(step, total, logs):
        if step > 2:  # the checkpoint at step 2 (eval_steps) is on disk by now
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train_sft(config, slug, progress=kill_after_first_checkpoint)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    work = list((config.cache_dir / "work" / slug).glob("sft-*/checkpoint-2"))
    assert len(work) == 1
    cut_off = work[0].parent / "checkpoint-4"  # a later one a lost node left half-written
    cut_off.mkdir()
    (cut_off / "adapter_model.safetensors").write_bytes(b"half")

    steps_run: list[int] = []
    with caplog.at_level("INFO", logger="foundry"):
        artifact = train_sft(config, slug, progress=lambda step, *_: steps_run.append(step))
    assert sorted(set(steps_run)) == list(range(3, SFT_STEPS + 1))  # steps 1-2 are not redone
    assert artifact.summary.resumed_from_step == 2
    assert artifact.summary.steps == trained["sft"][slug].summary.steps == SFT_STEPS
    full = trained["sft"][slug].summary
    assert len(artifact.summary.train_losses) == len(full.train_losses)
    # The resumed run sees the same batches as an uninterrupted one and ends at the same weights.
    assert artifact.summary.train_tokens == full.train_tokens
    resumed, uninterrupted = _tensors(folder), trained["tensors"][(slug, "sft")]
    assert all(torch.allclose(resumed[k], uninterrupted[k], atol=1e-5) for k in uninterrupted)
    assert not work[0].parent.exists()
    assert any("resuming from" in r.getMessage() for r in caplog.records)
    assert any(f"removing {cut_off}: it was cut off" in r.getMessage() for r in caplog.records)
    lines = [r.getMessage() for r in caplog.records if "tokens/s" in r.getMessage()]
    assert lines and all(line.startswith(f"step      4/{SFT_STEPS}") for line in lines[-1:])


@pytest.fixture
def small_project(tmp_path):
    return _project(tmp_path / "project")


def test_empty_train_split_says_what_to_add(small_project):
    config = load_config(small_project / "foundry.yaml")
    summary = validate_personas(config, ["jonah-okafor"])
    persona = summary.personas[0]
    persona.items = [item for item in persona.items if item.split != "train"]
    with pytest.raises(TrainingDataError, match="train split is empty") as error:
        sft_examples(persona, summary.topics, None)
    assert "data/personas/jonah-okafor/corpus" in str(error.value)
    assert "turns.jsonl" in str(error.value)


def test_synthetic_turns_join_train_and_a_bad_line_names_file_and_line(small_project):
    config = load_config(small_project / "foundry.yaml")
    summary = validate_personas(config, ["jonah-okafor"])
    persona = summary.personas[0]
    turns = config.data_dir / "synthetic" / "jonah-okafor" / "turns.jsonl"
    turns.parent.mkdir(parents=True)
    turns.write_text(
        json.dumps({"prompt": "Will S-curves bend?", "text": "Feedback loops."}) + "\n"
    )
    train, evaluation = sft_examples(persona, summary.topics, turns)
    assert len(train) == persona.stats.train + 1 and len(evaluation) == persona.stats.validation
    assert train[-1]["prompt"][0]["content"] == "Will S-curves bend?"
    assert train[-1]["completion"] == [{"role": "assistant", "content": "Feedback loops."}]
    assert all(example["prompt"][0]["role"] == "user" for example in train)  # no system turn

    turns.write_text(turns.read_text() + "\n" + json.dumps({"prompt": "Only a prompt"}) + "\n")
    with pytest.raises(TrainingDataError, match=r"turns\.jsonl, line 3: .*`text`"):
        sft_examples(persona, summary.topics, turns)
    turns.write_text("{not json\n")
    with pytest.raises(TrainingDataError, match=r"turns\.jsonl, line 1: not valid JSON"):
        sft_examples(persona, summary.topics, turns)


@pytest.mark.slow
def test_unknown_target_module_lists_valid_names(trained):
    from foundry.training.adapter_training import train_sft

    config = trained["config"].model_copy(deep=True)
    config.training.lora.target_modules = ["q_proj", "qkv_projection"]
    config._root = trained["config"].root
    target = config.adapter_dir("jonah-okafor", "sft")
    before = (target / "adapter_model.safetensors").read_bytes()
    with pytest.raises(TrainingError, match="'qkv_projection' match no module") as error:
        train_sft(config, "jonah-okafor")
    assert "q_proj" in str(error.value) and "down_proj" in str(error.value)
    assert "all-linear" in str(error.value)
    assert (target / "adapter_model.safetensors").read_bytes() == before


def test_unsloth_without_cuda_says_cuda_is_required(small_project, monkeypatch):
    import torch

    from foundry.training.backends import resolve_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = load_config(small_project / "foundry.yaml")
    config.training.backend = "unsloth"
    with pytest.raises(TrainingError, match="needs a CUDA GPU") as error:
        resolve_backend(config)
    assert "`peft`" in str(error.value) and "`auto`" in str(error.value)
    config.training.backend = "auto"
    assert resolve_backend(config) == "peft"


def test_together_backend_refuses_the_tiny_base(small_project):
    from foundry.training.backends import resolve_backend

    config = load_config(small_project / "foundry.yaml")
    config.training.backend = "together"
    with pytest.raises(TrainingError, match="`base_model.name` is `tiny`") as error:
        resolve_backend(config)
    assert "`auto`" in str(error.value)


def test_dpo_without_an_sft_adapter_says_to_train_sft_first(small_project):
    from foundry.training.adapter_training import train_dpo

    config = load_config(small_project / "foundry.yaml")
    with pytest.raises(TrainingError, match="has none at") as error:
        train_dpo(config, "tobias-renn", pairs=[])
    assert "foundry train --persona tobias-renn --stage sft" in str(error.value)
    assert not config.adapter_dir("tobias-renn", "dpo").exists()


def test_rank_zero_is_rejected_at_config_load(tmp_path):
    root = make_project(tmp_path / "project", config_text="training: {lora: {r: 0}}\n")
    with pytest.raises(ConfigError, match=r"`training\.lora\.r`.*got 0"):
        load_config(root / "foundry.yaml")


def test_base_documents_hold_train_items_only_plain_and_as_chat(small_project):
    from foundry.training.datasets import base_documents

    config = load_config(small_project / "foundry.yaml")
    summary = validate_personas(config)
    documents = base_documents(summary)
    train = [i.text for p in summary.personas for i in p.items if i.split == "train"]
    held_out = {i.text for p in summary.personas for i in p.items if i.split != "train"}
    assert [d.text for d in documents[::2]] == train == [d.text for d in documents[1::2]]
    assert all(d.prompt is None for d in documents[::2])
    assert all(d.prompt.startswith("Debate prompt: ") for d in documents[1::2])
    assert not held_out & {d.text for d in documents}
    assert base_documents(validate_personas(config)) == documents
