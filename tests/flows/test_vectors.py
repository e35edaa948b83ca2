"""Persona vectors on a small tiny base: extraction through the CLI, the steer variants in
evaluation (cached and uncached alike), generation, registration with the model version, the
refusal of a vector from another base, and transcript monitoring."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.config import load_config
from foundry.evaluation.cache import CacheStats
from foundry.evaluation.run import evaluate
from foundry.steering.store import VectorError
from tests.conftest import SAMPLE_DIR, TINY_TRAINING, make_project

pytestmark = pytest.mark.slow

PERSONAS = ["jonah-okafor", "tobias-renn"]
STEERING = """
steering: {prompts: 4, sweep_prompts: 3, alphas: [0, 2, 8], max_new_tokens: 12, max_texts: 12}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two personas with SFT and DPO adapters, then their vectors extracted by the CLI."""
    from foundry.synthesis.pair_sets import load_pairs
    from foundry.training.adapter_training import train_dpo, train_sft
    from foundry.training.base_model import ensure_base

    root = make_project(
        tmp_path_factory.mktemp("vectors") / "project", config_text=TINY_TRAINING + STEERING
    )
    shutil.copytree(SAMPLE_DIR, root / "data")
    config = load_config(root / "foundry.yaml")
    ensure_base(config)
    for slug in PERSONAS:
        train_sft(config, slug)
        train_dpo(config, slug, pairs=load_pairs(config, slug))
    args = ["vectors", "extract", "-c", str(root / "foundry.yaml")]
    result = CliRunner().invoke(app, [*args, *(f"--persona={s}" for s in PERSONAS)])
    assert result.exit_code == 0, result.output
    return root, config, result.output


def test_extract_stores_every_family_with_its_metadata(project):
    root, config, output = project
    assert "Persona vectors" in output and "tobias-renn" in output
    meta = json.loads((config.vector_dir("tobias-renn") / "vector.json").read_text())
    layers = config.base_model.tiny.num_layers
    assert "output of decoder block L-1" in meta["convention"]
    assert 1 <= meta["layer"] <= layers and meta["layer_choice"] == "auc"
    assert meta["family"] == "one_vs_rest" and meta["base_model"].startswith("tiny:")
    assert set(meta["alpha"]) == {"steer", "dpo+steer"}
    assert all(len(meta["sweep"][v]) == 3 for v in ("steer", "dpo+steer"))
    assert all(0.0 <= auc <= 1.0 for aucs in meta["auc"].values() for auc in aucs)
    assert meta["auc"]["one_vs_rest"][meta["layer"] - 1] == max(meta["auc"]["one_vs_rest"])
    assert meta["samples"]["train_texts"] == 12 and meta["samples"]["neutral_answers"] == 4
    assert {"persona", "one_vs_rest", "persona_prompted", "persona_texts", "vs:jonah-okafor"} <= (
        set(meta["norms"])
    )
    assert meta["adapters"]["dpo"]  # the adapter the dpo+steer strength was swept on
    png = (config.vector_dir("tobias-renn") / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    # Each chosen strength is fluent by the guard.
    for variant, rows in meta["sweep"].items():
        chosen = next(r for r in rows if r["alpha"] == meta["alpha"][variant])
        assert chosen["nll_gain"] <= 0.5


def test_show_prints_the_sweep(project):
    root, _, _ = project
    result = CliRunner().invoke(
        app, ["vectors", "show", "-c", str(root / "foundry.yaml"), "--persona", "tobias-renn"]
    )
    assert result.exit_code == 0, result.output
    assert "tobias-renn steer sweep" in result.output and "AUC per layer" in result.output


def test_steer_variants_evaluate_the_same_from_cache_and_without(project, tmp_path):
    _, config, _ = project
    variants = ["base", "dpo", "steer", "dpo+steer"]
    first, _ = evaluate(config, variants=variants, personas=PERSONAS, out_dir=tmp_path / "a")
    assert first.variants == variants
    for variant in ("steer", "dpo+steer"):
        assert first.metrics[variant].answers == 2 * len(first.heldout_topics)
        assert first.metrics[variant].perplexity is not None
    stats = CacheStats()
    again, _ = evaluate(
        config, variants=variants, personas=PERSONAS, out_dir=tmp_path / "b", cache_stats=stats
    )
    assert not stats.is_model_loaded  # every steered batch came from the cache
    fresh, _ = evaluate(
        config, variants=variants, personas=PERSONAS, out_dir=tmp_path / "c", cache=False
    )
    for report in (again, fresh):
        assert report.metrics == first.metrics
    # The steered variants' metrics are valid MLflow names.
    from foundry.evaluation.summary import flat_metrics
    from registry.tracking import log_eval_report, open_client, tracking_uri

    client = open_client(config)
    run = client.create_run(client.create_experiment("steer-metrics"))
    log_eval_report(first, tmp_path / "a", run.info.run_id, tracking_uri(config))
    logged = client.get_run(run.info.run_id).data.metrics
    assert (
        logged["eval.dpo_steer.style_accuracy"]
        == flat_metrics(first)["eval.dpo_steer.style_accuracy"]
    )
    rows = [
        json.loads(line) for line in (tmp_path / "a" / "answers.jsonl").read_text().splitlines()
    ]
    answers = {(r["variant"], r["persona"], r["topic_id"]): r["answer"] for r in rows}
    for slug in PERSONAS:
        meta = json.loads((config.vector_dir(slug) / "vector.json").read_text())
        for variant, unsteered in (("steer", "base"), ("dpo+steer", "dpo")):
            pairs = [
                (answer, answers[(unsteered, slug, topic)])
                for (v, s, topic), answer in answers.items()
                if v == variant and s == slug
            ]
            # At strength 0 a steered variant is its unsteered one; above 0 it speaks otherwise.
            is_same = all(a == b for a, b in pairs)
            assert is_same == (meta["alpha"][variant] == 0.0), (slug, variant, meta["alpha"])


def test_generate_with_a_steer_variant(project):
    root, _, _ = project
    result = CliRunner().invoke(
        app,
        ["generate", "-c", str(root / "foundry.yaml"), "--persona", "tobias-renn",
         "--variant", "steer", "--variant", "dpo+steer", "--max-new-tokens", "8",
         "Will AI capex pay off?"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "dpo+steer" in result.output


def test_a_vector_from_another_base_is_refused(project, tmp_path):
    _, config, _ = project
    other = config.with_adapters_dir(tmp_path / "adapters")
    for slug in PERSONAS:
        shutil.copytree(config.adapters_dir / slug, other.adapter_dir(slug, "dpo").parent)
    meta_file = other.vector_dir("tobias-renn") / "vector.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "base_model": "tiny:tiny-0000"}))
    with pytest.raises(VectorError, match="extracted from base model 'tiny:tiny-0000'"):
        evaluate(other, variants=["steer"], personas=PERSONAS, out_dir=tmp_path / "r", cache=False)


def test_the_vector_is_registered_with_the_model_version_and_fetched(project, tmp_path):
    from registry.champions import promote_version
    from registry.loading import fetch_champions
    from registry.models import get_alias_version
    from registry.registration import register_retrain
    from registry.tracking import open_client

    _, config, _ = project
    result = register_retrain(
        config, ["tobias-renn"], data_rev="test", content_hashes={"tobias-renn": "h"},
        eval_folder=None,
    )  # fmt: skip
    version = result["tobias-renn"]["version"]
    client = open_client(config)
    tags = client.get_model_version("persona-tobias-renn", str(version)).tags
    meta = json.loads((config.vector_dir("tobias-renn") / "vector.json").read_text())
    assert tags["vector.layer"] == str(meta["layer"])
    assert tags["vector.alpha.dpo_steer"] == str(meta["alpha"]["dpo+steer"])
    shown = CliRunner().invoke(app, ["registry", "show", "tobias-renn", "-c", str(config.source)])
    alphas = f"a{meta['alpha']['steer']}/{meta['alpha']['dpo+steer']}"
    assert f"L{meta['layer']}" in shown.output and alphas in shown.output
    promote_version(client, "tobias-renn", version, config.registry.promotion, force=True)
    assert int(get_alias_version(client, "tobias-renn", "champion").version) == version
    fetch_champions(config, ["tobias-renn"], tmp_path / "champions")
    fetched = tmp_path / "champions" / "tobias-renn" / "vector"
    for name in ("vectors.safetensors", "vector.json"):
        original = config.vector_dir("tobias-renn") / name
        assert (fetched / name).read_bytes() == original.read_bytes()


def test_monitor_reports_turns_and_flags(project, tmp_path):
    from foundry.steering.inputs import read_steering_corpus

    root, config, _ = project
    held = read_steering_corpus(config).validation
    turns = [
        {"speaker": "tobias-renn", "text": held["tobias-renn"][0].response},
        {"speaker": "jonah-okafor", "text": held["jonah-okafor"][0].response},
        {"speaker": "tobias-renn", "text": held["tobias-renn"][1].response},
    ]
    transcript = tmp_path / "debate.jsonl"
    transcript.write_text("".join(json.dumps(t) + "\n" for t in turns))
    out = tmp_path / "scores.json"
    args = ["monitor", str(transcript), "-c", str(root / "foundry.yaml"), "--json", str(out)]
    extract = CliRunner().invoke(
        app, ["vectors", "extract", "-c", str(root / "foundry.yaml")]
    )  # monitoring reads every persona's vector
    assert extract.exit_code == 0, extract.output
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [t["speaker"] for t in report["turns"]] == [t["speaker"] for t in turns]
    assert all(set(t["scores"]) == set(held) for t in report["turns"])
    assert report["calibration"]["rows"] == report["calibration"]["columns"] == list(held)
    assert "diagonal dominance" in result.output
    transcript.write_text(
        '{"speaker": "tobias-renn", "text": "x"}\n{"speaker": "nobody", "text": "y"}\n'
    )
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1 and "line 2" in bad.output


def test_a_layer_out_of_range_is_refused_before_any_work(project):
    from foundry.steering.activations import LayerError
    from tasks.steering import extract_persona_vectors

    _, config, _ = project
    layers = config.base_model.tiny.num_layers
    bad = config.model_copy(update={"steering": config.steering.model_copy(update={"layer": 9})})
    with pytest.raises(LayerError, match=rf"layer 9 is out of range: .* 1\.\.{layers}"):
        extract_persona_vectors(bad, ["tobias-renn"])


def test_one_persona_alone_has_nothing_to_contrast_with(tmp_path):
    from foundry.steering.inputs import SteeringSetupError
    from tasks.steering import extract_persona_vectors

    root = make_project(tmp_path / "project", config_text=TINY_TRAINING)
    shutil.copytree(SAMPLE_DIR, root / "data")
    for other in ("jonah-okafor", "marguerite-vale", "priya-castellanos"):
        shutil.rmtree(root / "data" / "personas" / other)
    with pytest.raises(SteeringSetupError, match="1 persona.*add another persona"):
        extract_persona_vectors(load_config(root / "foundry.yaml"))


def test_the_local_server_answers_as_each_persona_with_its_vector(project):
    from fastapi.testclient import TestClient

    from deploy.local import BASE_NAME, build_app

    _, config, _ = project
    app, engine, adapters, vectors = build_app(config)
    try:
        client = TestClient(app)
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert ids == [BASE_NAME, *PERSONAS]
        assert {f"{s}@{v}" for s in PERSONAS for v in ("steer", "dpo+steer")} <= vectors
        for slug in PERSONAS:
            body = {"model": slug, "messages": [{"role": "user", "content": "Will AI pay off?"}],
                    "max_tokens": 8, "persona_vector": slug}  # fmt: skip
            reply = client.post("/v1/chat/completions", json=body)
            assert reply.status_code == 200, reply.text
            assert reply.json()["model"] == slug
    finally:
        engine.close()


def test_deploy_local_then_the_openai_client_gets_each_persona(project):
    """`foundry deploy --target local` smoke-tests each champion on a temporary server and
    records it; `foundry serve`'s app then serves the deployed champions, and the official
    `openai` client gets an answer from each persona, plain, streamed and steered."""
    import openai

    from deploy.local import BASE_NAME, build_app, serve_in_thread, served_adapters
    from registry.champions import promote_version
    from registry.registration import register_retrain
    from registry.tracking import open_client

    _, config, _ = project
    client = open_client(config)
    registered = register_retrain(
        config, PERSONAS, data_rev="test", content_hashes=dict.fromkeys(PERSONAS, "h"),
        eval_folder=None,
    )  # fmt: skip
    for slug in PERSONAS:
        promote_version(
            client, slug, registered[slug]["version"], config.registry.promotion, force=True
        )
    args = ["deploy", "--target", "local", "-c", str(config.source)]
    result = CliRunner().invoke(app, [*args, *(f"--persona={s}" for s in PERSONAS)])
    assert result.exit_code == 0, result.output
    for slug in PERSONAS:
        version = registered[slug]["version"]
        assert f"{slug} v{version} → local as {slug} (uploaded; smoke test" in result.output
        tags = client.get_model_version(f"persona-{slug}", str(version)).tags
        assert float(tags["deploy.local.smoke_latency_s"]) > 0
        model_tags = client.get_registered_model(f"persona-{slug}").tags
        assert model_tags["deploy.local.version"] == str(version)
    again = CliRunner().invoke(app, [*args, "--persona", "tobias-renn"])
    assert "upload reused" in again.output, again.output
    status = CliRunner().invoke(app, ["deploy", "status", "-t", "local", "-c", str(config.source)])
    assert status.exit_code == 0 and "jonah-okafor" in status.output, status.output

    adapters, origin = served_adapters(config)
    assert origin == dict.fromkeys(PERSONAS, "deployed") and set(adapters) == set(PERSONAS)
    trained, _ = served_adapters(config, "trained")
    assert trained == {slug: config.adapter_dir(slug, "dpo") for slug in PERSONAS}
    served_app, engine, _, _ = build_app(config)
    server = serve_in_thread(served_app)
    try:
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="local", max_retries=0)
        assert [m.id for m in sdk.models.list().data] == [BASE_NAME, *PERSONAS]
        question = [{"role": "user", "content": "Will AI capex pay off?"}]
        answers = {}
        for slug in PERSONAS:
            reply = sdk.chat.completions.create(model=slug, messages=question, max_tokens=12)
            answers[slug] = reply.choices[0].message.content
            assert reply.model == slug and answers[slug].strip()
            assert reply.usage.completion_tokens > 0
            chunks = sdk.chat.completions.create(
                model=slug, messages=question, max_tokens=12, stream=True
            )
            streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert streamed.strip() == answers[slug]  # greedy by default: the same text
            steered = sdk.chat.completions.create(
                model=BASE_NAME, messages=question, max_tokens=12,
                extra_body={"persona_vector": slug},
            )  # fmt: skip
            assert steered.choices[0].message.content.strip()
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="nobody", messages=question, max_tokens=4)
    finally:
        server.stop()
        engine.close()


def test_deploy_local_refuses_an_adapter_of_another_tiny_base_build(project):
    """Two tiny builds have the same shapes: only the recorded build name tells them apart."""
    from deploy import DeployError
    from deploy.local import make_target
    from deploy.release import deploy_version
    from tests.deploy_support import register_lora

    _, config, _ = project
    version = register_lora(config, "jonah-okafor", "tiny", champion=False)  # base path "tiny"
    target = make_target(config)
    try:
        with pytest.raises(DeployError, match="trained on the tiny base 'tiny'.*rebuilt since"):
            deploy_version(config, target, "jonah-okafor", version)
    finally:
        target.close()
