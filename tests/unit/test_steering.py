"""Steering on a random tiny Llama: the layer convention, a planted direction, the hooks (KV cache,
left padding, adapters, several vectors), algebra, storage and strength selection."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from foundry.steering.activations import (
    LayerError,
    ResponseRow,
    capture_layers,
    check_layer,
    response_activations,
)
from foundry.steering.algebra import add, away_from, cosine, projection, scale, subtract
from foundry.steering.directions import layer_auc
from foundry.steering.hooks import SteeringError, SteerVector, register_vectors, steering
from foundry.steering.store import (
    PersonaVector,
    VectorError,
    load_persona_vector,
    save_persona_vector,
)
from foundry.steering.sweep import choose_alpha
from foundry.training.generation import GenerationParams, GenerationRequest, generate
from foundry.training.scoring import ScoreRow, score_completions

HIDDEN, LAYERS = 32, 3
PROMPT = "What do you say?"
WORDS = "apple banana cherry mango zinc quartz volt iron river ocean lake stream".split()


@pytest.fixture(scope="module")
def tiny():
    import torch

    from foundry.training.config import TinyModelConfig
    from foundry.training.tiny_model import PretrainDoc, new_tiny_model, train_tokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(40)]
    settings = TinyModelConfig(
        vocab_size=300, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=2, intermediate_size=64
    )
    tokenizer = train_tokenizer([PretrainDoc(t, PROMPT) for t in texts], settings)
    torch.manual_seed(0)
    model = new_tiny_model(settings, tokenizer).eval()
    yield model, tokenizer, texts
    torch.set_num_threads(threads)


def _vector(seed: int, layer: int = 2, alpha: float = 1.0, scale_to: float = 8.0) -> SteerVector:
    v = np.random.default_rng(seed).normal(size=HIDDEN).astype(np.float32)
    return SteerVector(layer, v / np.linalg.norm(v) * scale_to, alpha, f"v{seed}", "tiny:test")


PROMPTS = ["What do you say?", "Tell me about the river and the ocean, and why it matters to you."]
GREEDY = GenerationParams(max_new_tokens=12, do_sample=False, batch_size=8)


def _generate(
    model, tokenizer, vectors: dict[str, SteerVector], steer: tuple[str, ...], prompts=PROMPTS
):
    register_vectors(model, vectors)
    requests = [GenerationRequest(prompt=p, steer=steer) for p in prompts]
    return generate(model, tokenizer, requests, GREEDY)


def test_hidden_states_index_convention(tiny):
    """Our layer L is transformers' hidden_states[L] (output of block L-1); the last one is
    before the final norm, where transformers' last entry is after it."""
    import torch

    model, tokenizer, _ = tiny
    ids = tokenizer(["apple river zinc"], return_tensors="pt")["input_ids"]
    with torch.inference_mode(), capture_layers(model) as captured:
        out = model(input_ids=ids, output_hidden_states=True)
    for layer in range(1, LAYERS):
        assert torch.allclose(captured[layer - 1], out.hidden_states[layer], atol=1e-5)
    assert torch.allclose(model.model.norm(captured[-1]), out.hidden_states[LAYERS], atol=1e-5)
    assert not torch.allclose(captured[-1], out.hidden_states[LAYERS], atol=1e-3)


def test_planted_direction_is_recovered_at_its_layer_only(tiny):
    """Add a direction to one group's block output; the mean difference over response tokens
    finds it (cosine > 0.9) at that layer, and not one layer earlier."""
    import torch

    model, tokenizer, texts = tiny
    planted = _vector(7, layer=2, scale_to=6.0)
    blocks = model.model.layers
    state = {"on": False}

    def plant(_module, _inputs, output):
        if not state["on"]:
            return output
        hidden = output[0] if isinstance(output, tuple) else output
        return hidden + torch.from_numpy(planted.vector)

    handle = blocks[planted.layer - 1].register_forward_hook(plant)
    try:
        state["on"] = True
        persona = response_activations(
            model, tokenizer, [ResponseRow(PROMPT, t) for t in texts[:20]]
        )
        state["on"] = False
        neutral = response_activations(
            model, tokenizer, [ResponseRow(PROMPT, t) for t in texts[20:]]
        )
    finally:
        handle.remove()
    direction = persona.mean(axis=0) - neutral.mean(axis=0)
    unit = planted.vector / np.linalg.norm(planted.vector)

    def cos(layer: int) -> float:
        d = direction[layer - 1]
        return float(d @ unit / np.linalg.norm(d))

    assert cos(2) > 0.9
    assert cos(1) < 0.5
    aucs = layer_auc(direction, persona, neutral)
    assert aucs[1] == 1.0 and aucs[0] < 1.0


def test_steered_generation_is_the_same_with_and_without_kv_cache(tiny):
    import torch

    model, tokenizer, _ = tiny
    vector = _vector(1, layer=2, alpha=2.0)
    steered = _generate(model, tokenizer, {"v": vector}, ("v",))
    plain = _generate(model, tokenizer, {}, ())
    assert steered != plain  # the vector changes what is said
    tokenizer.padding_side = "left"
    chats = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in PROMPTS
    ]
    inputs = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    start = inputs["input_ids"].shape[1] - 1
    with torch.inference_mode(), steering(model, [[vector]] * 2, [start] * 2):
        out = model.generate(
            **inputs, max_new_tokens=12, do_sample=False, use_cache=False,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    tokenizer.padding_side = "right"
    uncached = [
        t.strip() for t in tokenizer.batch_decode(out[:, start + 1 :], skip_special_tokens=True)
    ]
    assert uncached == steered


def test_left_padding_steers_each_row_as_if_alone(tiny):
    model, tokenizer, _ = tiny
    vector = _vector(2, layer=1, alpha=2.0)
    batched = _generate(model, tokenizer, {"v": vector}, ("v",))
    alone = [_generate(model, tokenizer, {"v": vector}, ("v",), [p])[0] for p in PROMPTS]
    assert batched == alone


def test_rows_of_one_batch_use_their_own_vectors(tiny):
    model, tokenizer, _ = tiny
    a, b = _vector(3, alpha=2.0), _vector(4, alpha=2.0)
    register_vectors(model, {"a": a, "b": b})
    mixed = generate(
        model, tokenizer,
        [GenerationRequest(prompt=PROMPTS[0], steer=("a",)),
         GenerationRequest(prompt=PROMPTS[0], steer=("b",)),
         GenerationRequest(prompt=PROMPTS[0])],
        GREEDY,
    )  # fmt: skip
    assert mixed[0] == _generate(model, tokenizer, {}, ("a",), PROMPTS[:1])[0]
    assert mixed[1] == _generate(model, tokenizer, {}, ("b",), PROMPTS[:1])[0]
    assert mixed[2] == _generate(model, tokenizer, {}, (), PROMPTS[:1])[0]
    assert len(set(mixed)) == 3


def test_several_vectors_add_up_like_their_sum(tiny):
    model, tokenizer, _ = tiny
    a, b = _vector(5, alpha=1.5), _vector(6, alpha=0.5)
    both = _generate(model, tokenizer, {"a": a, "b": b}, ("a", "b"))
    summed = add(scale(a, 1.5), scale(b, 0.5)).at(1.0)
    assert both == _generate(model, tokenizer, {"sum": summed}, ("sum",))
    assert both != _generate(model, tokenizer, {}, ("a",))


def test_steering_composes_with_a_lora_adapter(tiny):
    import copy

    from peft import LoraConfig, get_peft_model

    model, tokenizer, _ = tiny
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft = get_peft_model(copy.deepcopy(model), config, adapter_name="persona").eval()
    vector = _vector(8, alpha=2.0)
    register_vectors(peft, {"v": vector})
    rows = [
        GenerationRequest(prompt=PROMPTS[1], adapter="persona", steer=("v",)),
        GenerationRequest(prompt=PROMPTS[1], adapter="persona"),
        GenerationRequest(prompt=PROMPTS[1], adapter="__base__", steer=("v",)),
    ]
    mixed = generate(peft, tokenizer, rows, GREEDY)
    alone = [generate(peft, tokenizer, [row], GREEDY)[0] for row in rows]
    assert mixed == alone
    # Scoring steers the same way; adapter + vector differs from either alone.
    scored = [
        ScoreRow(PROMPTS[1], "the river and the ocean", r.adapter, None, r.steer) for r in rows
    ]
    together = [s.nll for s in score_completions(peft, tokenizer, scored)]
    apart = [score_completions(peft, tokenizer, [row])[0].nll for row in scored]
    assert together == pytest.approx(apart, rel=1e-4)
    assert len({round(n, 3) for n in together}) == 3


def test_a_shared_system_prompt_is_read_once_with_the_same_answers_and_scores(tiny, monkeypatch):
    """Rows of one adapter under one long system prompt (the `prompt` variant's contract) share
    its KV cache; answers and scores are those of reading it in every row, steered or not, in
    batches that mix groups, and with the LM head applied one row at a time."""
    import copy

    from peft import LoraConfig, get_peft_model

    import foundry.training.prefix as prefix
    import foundry.training.scoring as scoring

    model, tokenizer, texts = tiny
    # A strong adapter on the keys and values: what the shared cache holds.
    config = LoraConfig(
        r=4, lora_alpha=64, target_modules=["k_proj", "v_proj"], init_lora_weights=False
    )
    peft = get_peft_model(copy.deepcopy(model), config, adapter_name="persona").eval()
    register_vectors(peft, {"v": _vector(8, alpha=2.0)})
    system = " ".join(texts[:12])  # well over MIN_SHARED_TOKENS tiny tokens
    calls = []
    real_prefill = prefix.prefill

    def counted(*args, **kwargs):
        calls.append(len(args[1]))
        return real_prefill(*args, **kwargs)

    monkeypatch.setattr("foundry.training.generation.prefill", counted)
    monkeypatch.setattr("foundry.training.scoring.prefill", counted)
    requests = [
        GenerationRequest(prompt=p, adapter="persona", system=system, steer=steer)
        for p in PROMPTS
        for steer in ((), ("v",))
    ]
    scored = [
        ScoreRow(r.prompt, completion, r.adapter, r.system, r.steer)
        for r in requests
        for completion in ("the river and the ocean", "zinc quartz volt iron")
    ] + [ScoreRow(PROMPTS[0], "apple banana", "__base__")]

    steered = [r for r in requests if r.steer]
    shared_answers = generate(peft, tokenizer, steered, GREEDY)
    shared_scores = score_completions(peft, tokenizer, scored, batch_size=len(scored))
    assert calls and min(calls) >= prefix.MIN_SHARED_TOKENS  # the prefix was shared
    monkeypatch.setattr(scoring, "HEAD_CHUNK_BYTES", 1)  # the LM head one row at a time
    chunked = score_completions(peft, tokenizer, scored, batch_size=len(scored))
    monkeypatch.setattr(prefix, "MIN_SHARED_TOKENS", 10**9)
    calls.clear()
    plain_answers = generate(peft, tokenizer, steered, GREEDY)
    plain_scores = score_completions(peft, tokenizer, scored, batch_size=len(scored))
    assert not calls

    assert shared_answers == plain_answers
    # The adapter changes these answers: a prefix read without it would show.
    unadapted = [r.model_copy(update={"adapter": "__base__"}) for r in steered]
    assert generate(peft, tokenizer, unadapted, GREEDY) != plain_answers
    assert [s.tokens for s in shared_scores] == [s.tokens for s in plain_scores]
    assert [s.nll for s in shared_scores] == pytest.approx([s.nll for s in plain_scores], rel=1e-4)
    assert [s.nll for s in chunked] == pytest.approx([s.nll for s in plain_scores], rel=1e-4)
    # Steering still moves the scores (it starts after the shared prefix).
    assert shared_scores[0].nll != pytest.approx(shared_scores[2].nll, rel=1e-3)


def test_a_long_system_prompt_is_kept_whole_and_the_completion_is_cut(tiny):
    """Scoring rows keep their whole prompt (a contract longer than the old 512-token budget
    once left one completion token) and cut the completion at `max_completion` tokens."""
    from foundry.data.framing import encode_completion

    _, tokenizer, texts = tiny
    system = " ".join(texts) * 3
    completion = " ".join(texts[:20])
    full_prompt = len(encode_completion(tokenizer, PROMPT, "x", system, context=None)[0]) - 2
    assert full_prompt > 512
    ids, prompt_len = encode_completion(tokenizer, PROMPT, completion, system, 50)
    assert (prompt_len, len(ids)) == (full_prompt, full_prompt + 50)
    whole = len(tokenizer(completion, add_special_tokens=False)["input_ids"]) + 1  # + eos
    ids, prompt_len = encode_completion(tokenizer, PROMPT, completion, system, 10**6)
    assert len(ids) - prompt_len == whole
    # Past the model's context, the prompt loses its oldest tokens.
    ids, prompt_len = encode_completion(tokenizer, PROMPT, completion, system, 50, context=300)
    assert (prompt_len, len(ids)) == (250, 300)


def test_bad_layers_and_shapes_are_refused(tiny):
    model, tokenizer, _ = tiny
    with pytest.raises(LayerError, match=r"layer 4 is out of range: .* 1\.\.3"):
        check_layer(model, LAYERS + 1)
    with pytest.raises(LayerError, match="out of range"):
        register_vectors(model, {"x": _vector(1, layer=0)})
    wrong = SteerVector(1, np.ones(HIDDEN + 1, dtype=np.float32), 1.0, "wide")
    with pytest.raises(SteeringError, match="another base model"):
        register_vectors(model, {"wide": wrong})
    with pytest.raises(SteeringError, match="not registered .*register_vectors"):
        _generate(model, tokenizer, {}, ("nobody",))


def test_algebra_on_known_vectors():
    e1 = SteerVector(2, np.array([1.0, 0.0, 0.0], dtype=np.float32), 1.0, "e1")
    d = SteerVector(2, np.array([1.0, 1.0, 0.0], dtype=np.float32), 1.0, "d")
    np.testing.assert_allclose(scale(d, 3).vector, [3, 3, 0])
    np.testing.assert_allclose(add(e1, d).vector, [2, 1, 0])
    np.testing.assert_allclose(subtract(d, e1).vector, [0, 1, 0])
    np.testing.assert_allclose(projection(d, e1), [1, 0, 0])
    np.testing.assert_allclose(away_from(d, e1).vector, [0, 1, 0])  # orthogonal to e1
    np.testing.assert_allclose(away_from(d, e1, 2.0).vector, [-1, 1, 0])  # points away from e1
    assert cosine(d, e1) == pytest.approx(1 / np.sqrt(2))
    with pytest.raises(SteeringError, match="same layer"):
        add(e1, SteerVector(1, e1.vector, 1.0, "other"))
    with pytest.raises(SteeringError, match="different models"):
        add(
            SteerVector(2, e1.vector, 1.0, "a", "tiny:a"),
            SteerVector(2, e1.vector, 1.0, "b", "tiny:b"),
        )
    with pytest.raises(SteeringError, match="zero"):
        projection(d, SteerVector(2, np.zeros(3, dtype=np.float32), 1.0, "z"))


def _persona_vector() -> PersonaVector:
    directions = {
        "one_vs_rest": np.arange(LAYERS * HIDDEN, dtype=np.float32).reshape(LAYERS, HIDDEN)
    }
    meta = {"base_model": "tiny:abc", "hidden_size": HIDDEN, "layer": 2, "family": "one_vs_rest",
            "alpha": {"steer": 4.0}}  # fmt: skip
    return PersonaVector("tobias-renn", directions, meta)


def test_vector_storage_round_trip_and_refusals(tmp_path):
    folder = save_persona_vector(_persona_vector(), tmp_path / "vector", {"sweep.png": b"png"})
    loaded = load_persona_vector(folder, base_model="tiny:abc", hidden_size=HIDDEN)
    meta = json.loads((folder / "vector.json").read_text())
    assert "output of decoder block L-1" in meta["convention"]
    steer = loaded.steer_vector("steer")
    assert steer.layer == 2 and steer.alpha == 4.0
    np.testing.assert_array_equal(steer.vector, _persona_vector().directions["one_vs_rest"][1])
    with pytest.raises(VectorError, match="extracted from base model 'tiny:abc'.*'tiny:other'"):
        load_persona_vector(folder, base_model="tiny:other")
    with pytest.raises(VectorError, match=f"{HIDDEN} dimensions but the model's hidden size is 64"):
        load_persona_vector(folder, hidden_size=64)
    with pytest.raises(VectorError, match="no chosen strength for 'dpo\\+steer'"):
        loaded.steer_vector("dpo+steer")
    with pytest.raises(VectorError, match="layer 9 is out of range"):
        loaded.steer_vector("steer", layer=9)
    with pytest.raises(VectorError, match="no persona vector in"):
        load_persona_vector(tmp_path / "missing")


def test_a_failed_save_keeps_the_previous_vector(tmp_path):
    folder = save_persona_vector(_persona_vector(), tmp_path / "vector", {})
    before = (folder / "vectors.safetensors").read_bytes()
    broken = _persona_vector()
    broken.meta["bad"] = object()  # not JSON: the save fails after the tensors are staged
    with pytest.raises(TypeError):
        save_persona_vector(broken, folder, {})
    assert (folder / "vectors.safetensors").read_bytes() == before


def _row(alpha: float, attribution: float, nll: float) -> dict:
    return {"alpha": alpha, "attribution": attribution, "nll": nll}


def test_strength_choice_keeps_fluency_and_refuses_collapse():
    rows = [_row(0, 0.2, 2.0), _row(2, 0.5, 2.3), _row(4, 0.7, 2.45), _row(8, 0.95, 3.4)]
    alpha, why = choose_alpha(rows, tolerance=0.5, min_gain=0.02)
    assert alpha == 4.0  # 8 scores higher but its NLL rose by 1.4 > 0.5
    assert why == ["alpha 8 refused: fluency collapses (NLL +1.40 > 0.5)"]
    flat = [_row(0, 0.5, 2.0), _row(2, 0.51, 2.1)]
    alpha, why = choose_alpha(flat, tolerance=0.5, min_gain=0.02)
    assert alpha == 0.0 and "alpha 0 kept" in why[-1]
