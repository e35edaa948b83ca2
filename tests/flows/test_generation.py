"""Generation with several LoRA adapters on one tiny base: mixed batches, seeds, adapter checks."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from foundry.data.framing import BASE_ADAPTER
from foundry.training.generation import (
    AdapterError,
    GenerationParams,
    GenerationRequest,
    attach_adapters,
    check_adapter_folder,
    generate,
    load_for_generation,
    use_adapter,
)
from tests.conftest import make_project

pytestmark = pytest.mark.slow

# 200 steps at hidden 64 (~6 s) is the least that makes greedy decoding say more than newlines.
SMALL_TINY = (
    "paths: {data_dir: examples/sample}\n"
    "base_model: {tiny: {pretrain_steps: 200, hidden_size: 64, intermediate_size: 128,"
    " vocab_size: 1000, batch_size: 8}}\n"
)
PROMPTS = [
    "Will central bank digital currencies replace cash?",
    "Is nuclear power worth its cost?",
    "Should AI workloads be regulated by 2030?",
    "What moves interest rates?",
]
NAMES = ["a", "b", "c"]
GREEDY = GenerationParams(do_sample=False, max_new_tokens=16, min_new_tokens=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: as fast for these tiny models, and no spin-waiting on a busy CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    """A small tiny base built once, its config, three differing LoRA adapters and the PeftModel."""
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model

    from foundry.config import load_config
    from foundry.data.framing import debate_prompt, nearest_topics
    from foundry.data.validation import validate_personas
    from foundry.training.base_model import load_base
    from foundry.training.tiny_model import PretrainDoc

    root = make_project(tmp_path_factory.mktemp("generation") / "project", config_text=SMALL_TINY)
    config = load_config(root / "foundry.yaml")
    summary = validate_personas(config)
    items = [i for p in summary.personas for i in p.items if i.split == "train"][:48]
    topics = nearest_topics([i.text for i in items], summary.topics)
    docs = [PretrainDoc(i.text) for i in items]
    docs += [PretrainDoc(i.text, debate_prompt(t)) for i, t in zip(items, topics, strict=True)]
    base = load_base(config, docs)
    folders = {}
    for seed, name in enumerate(NAMES, start=1):
        torch.manual_seed(seed)
        lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
        with warnings.catch_warnings():  # PEFT 0.21 reads a property transformers 5 deprecated
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
            adapter = get_peft_model(copy.deepcopy(base.model), lora)
        adapter.save_pretrained(root / f"adapter-{name}")
        folders[name] = root / f"adapter-{name}"
    model = attach_adapters(copy.deepcopy(base.model), folders)
    return {"config": config, "base": base, "folders": folders, "model": model, "root": root}


def mixed_requests(system: str | None = None) -> list[GenerationRequest]:
    names = [*NAMES, BASE_ADAPTER]
    return [
        GenerationRequest(prompt=prompt, adapter=names[(i + j) % 4], system=system)
        for i, prompt in enumerate(PROMPTS)
        for j in range(4)
    ]


def test_mixed_batch_matches_one_adapter_at_a_time_and_one_row_at_a_time(setup) -> None:
    model, tokenizer = setup["model"], setup["base"].tokenizer
    requests = mixed_requests()
    assert len({r.adapter for r in requests[:4]}) == 4  # every batch of 4 rows mixes all four

    mixed = generate(model, tokenizer, requests, GREEDY)

    by_adapter: dict[int, str] = {}
    for name in [*NAMES, BASE_ADAPTER]:
        rows = [i for i, r in enumerate(requests) if r.adapter == name]
        plain = [GenerationRequest(prompt=requests[i].prompt) for i in rows]
        with use_adapter(model, name) as inner:
            by_adapter.update(zip(rows, generate(inner, tokenizer, plain, GREEDY), strict=True))
    one_by_one = [generate(model, tokenizer, [r], GREEDY)[0] for r in requests]
    uneven = generate(model, tokenizer, requests, GREEDY.model_copy(update={"batch_size": 5}))

    assert mixed == [by_adapter[i] for i in range(len(requests))]
    assert mixed == one_by_one
    assert mixed == uneven
    # The comparison means something: real text, and rows that differ.
    assert all(text for text, r in zip(mixed, requests, strict=True) if r.adapter == BASE_ADAPTER)
    assert len(set(mixed)) >= 8
    assert model.active_adapter == "a"  # use_adapter restored the first adapter


def test_adapters_and_system_prompt_change_the_output(setup) -> None:
    model, tokenizer = setup["model"], setup["base"].tokenizer
    outputs = {
        name: generate(
            model, tokenizer, [GenerationRequest(prompt=p, adapter=name) for p in PROMPTS], GREEDY
        )
        for name in [*NAMES, BASE_ADAPTER]
    }
    for name in NAMES:
        assert outputs[name] != outputs[BASE_ADAPTER], name
    assert len({tuple(texts) for texts in outputs.values()}) == 4

    # The bare base model gives what the "__base__" rows give.
    plain = [GenerationRequest(prompt=p) for p in PROMPTS]
    assert generate(setup["base"].model, tokenizer, plain, GREEDY) == outputs[BASE_ADAPTER]

    system = "You are a blunt central banker. Answer in numbers."
    with_system = generate(model, tokenizer, mixed_requests(system), GREEDY)
    assert with_system != generate(model, tokenizer, mixed_requests(), GREEDY)


def test_sampling_is_reproducible_for_a_seed_and_changes_with_it(setup) -> None:
    model, tokenizer = setup["model"], setup["base"].tokenizer
    requests = mixed_requests()
    sampled = GenerationParams(max_new_tokens=16, min_new_tokens=4, seed=7, batch_size=8)

    first = generate(model, tokenizer, requests, sampled)
    again = generate(model, tokenizer, requests, sampled)
    other = generate(model, tokenizer, requests, sampled.model_copy(update={"seed": 8}))

    assert first == again
    assert first != other
    assert first != generate(model, tokenizer, requests, GREEDY)


def test_generate_restores_padding_side_and_refuses_unknown_adapters(setup) -> None:
    model, tokenizer = setup["model"], setup["base"].tokenizer
    assert tokenizer.padding_side == "right"
    generate(model, tokenizer, mixed_requests()[:3], GREEDY)
    assert tokenizer.padding_side == "right"

    with pytest.raises(AdapterError, match="zzz are not loaded .*loaded: a, b, c"):
        generate(model, tokenizer, [GenerationRequest(prompt="hi", adapter="zzz")], GREEDY)
    with pytest.raises(AdapterError, match="loaded: none"):
        generate(
            setup["base"].model, tokenizer, [GenerationRequest(prompt="hi", adapter="a")], GREEDY
        )


def test_load_for_generation_reloads_the_cached_base_with_adapters(setup) -> None:
    model, tokenizer = load_for_generation(setup["config"], setup["folders"])

    assert sorted(model.peft_config) == NAMES
    requests = mixed_requests()[:8]
    expected = generate(setup["model"], setup["base"].tokenizer, requests, GREEDY)
    assert generate(model, tokenizer, requests, GREEDY) == expected

    bare, _ = load_for_generation(setup["config"], {})
    assert not hasattr(bare, "peft_config")


def test_load_for_generation_checks_adapters_before_loading_the_base(tmp_path: Path) -> None:
    from foundry.config import load_config

    config = load_config(make_project(tmp_path / "empty", config_text=SMALL_TINY) / "foundry.yaml")
    # No tiny base is cached in this project: the adapter error must come first.
    with pytest.raises(AdapterError, match="does not exist"):
        load_for_generation(config, {"a": tmp_path / "missing"})


def test_attach_adapters_refuses_reserved_and_dotted_names(setup) -> None:
    base = setup["base"].model
    assert attach_adapters(base, {}) is base
    for name in (BASE_ADAPTER, "persona.sft", ""):
        with pytest.raises(AdapterError, match="is not allowed"):
            attach_adapters(base, {name: setup["folders"]["a"]})
    with pytest.raises(AdapterError, match="already loaded"):
        attach_adapters(setup["model"], {"a": setup["folders"]["b"]})
    assert not hasattr(base, "peft_config")  # nothing was injected into the base


def _corrupt_weights(folder: Path) -> None:
    (folder / "adapter_model.safetensors").write_bytes(b"not a safetensors file" * 20)


def _truncate_weights(folder: Path) -> None:
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: shutil.rmtree(f), "does not exist"),
        (lambda f: (f / "adapter_model.safetensors").unlink(), "no adapter_model.safetensors"),
        (lambda f: (f / "adapter_config.json").unlink(), "no adapter_config.json"),
        (
            lambda f: (f / "pytorch_model.bin").write_bytes(b"x"),
            "pytorch_model.bin: only safetensors",
        ),
        (
            lambda f: (f / "adapter_model.bin").write_bytes(b"x"),
            "adapter_model.bin: only safetensors",
        ),
        (lambda f: (f / "optimizer.pt").write_bytes(b"x"), "optimizer.pt: only safetensors"),
        (_corrupt_weights, "not a readable safetensors file"),
        (_truncate_weights, "not a readable safetensors file"),
        (lambda f: (f / "adapter_config.json").write_text("{oops"), "not valid JSON"),
        (lambda f: (f / "adapter_config.json").write_text("[1, 2]"), "no `peft_type`"),
    ],
)
def test_check_adapter_folder_refuses_bad_folders(setup, tmp_path: Path, damage, message) -> None:
    folder = tmp_path / "adapter"
    shutil.copytree(setup["folders"]["a"], folder)
    check_adapter_folder(folder)  # intact copy passes
    damage(folder)

    with pytest.raises(AdapterError, match=message) as caught:
        check_adapter_folder(folder)
    assert str(folder) in str(caught.value)
    assert "foundry train" in str(caught.value) or "delete them" in str(caught.value)
    with pytest.raises(AdapterError):
        attach_adapters(copy.deepcopy(setup["base"].model), {"x": folder})


def test_generation_params_validate_ranges() -> None:
    assert GenerationParams().model_dump() == {
        "max_new_tokens": 120,
        "min_new_tokens": 0,
        "temperature": 0.8,
        "top_p": 0.95,
        "do_sample": True,
        "seed": 0,
        "batch_size": 16,
    }
    for bad in (
        {"max_new_tokens": 0},
        {"temperature": 0},
        {"top_p": 1.5},
        {"batch_size": 0},
        {"seed": -1},
        {"min_new_tokens": 10, "max_new_tokens": 5},
        {"tempreature": 0.5},
    ):
        with pytest.raises(ValidationError):
            GenerationParams(**bad)
    assert json.loads(GenerationRequest(prompt="p").model_dump_json())["adapter"] == BASE_ADAPTER


def test_scores_of_a_mixed_batch_match_one_adapter_and_one_row_at_a_time(setup) -> None:
    import math

    from foundry.training.scoring import ScoreRow, score_completions

    model, tokenizer = setup["model"], setup["base"].tokenizer
    names = [*NAMES, BASE_ADAPTER]
    rows = [
        ScoreRow(prompt=p, completion=f"Rates fall when {p.lower()}", adapter=names[(i + j) % 4])
        for i, p in enumerate(PROMPTS)
        for j in range(4)
    ]
    mixed = score_completions(model, tokenizer, rows, batch_size=5)
    one_by_one = [score_completions(model, tokenizer, [row])[0] for row in rows]
    by_adapter = {}
    for name in names:
        picked = [i for i, r in enumerate(rows) if r.adapter == name]
        plain = [ScoreRow(rows[i].prompt, rows[i].completion) for i in picked]
        with use_adapter(model, name) as inner:
            by_adapter.update(zip(picked, score_completions(inner, tokenizer, plain), strict=True))

    for i, score in enumerate(mixed):
        assert score.tokens == one_by_one[i].tokens == by_adapter[i].tokens > 3
        assert math.isclose(score.nll, one_by_one[i].nll, rel_tol=1e-4)
        assert math.isclose(score.nll, by_adapter[i].nll, rel_tol=1e-4)
    # Different adapters give different scores to the same completion.
    same_text = [s.nll for s, r in zip(mixed, rows, strict=True) if r.prompt == PROMPTS[0]]
    assert len({round(x, 3) for x in same_text}) == 4


def test_score_equals_the_models_own_loss_on_the_completion(setup) -> None:
    import torch

    from foundry.training.scoring import ScoreRow, score_completions

    base, tokenizer = setup["base"].model, setup["base"].tokenizer
    row = ScoreRow(prompt=PROMPTS[1], completion="Nuclear power is worth it.", system="Be brief.")
    score = score_completions(base, tokenizer, [row])[0]

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPTS[1]}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion = tokenizer(row.completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + completion + [tokenizer.eos_token_id]])
    labels = ids.clone()
    labels[0, : len(prompt_ids)] = -100
    with torch.inference_mode():
        loss = base(input_ids=ids, labels=labels).loss.item()
    assert score.tokens == len(completion) + 1
    assert abs(score.mean_nll - loss) < 1e-4
