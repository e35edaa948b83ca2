"""`foundry prompts export --format faultline` through Typer's runner: Faultline's
`--personas-json` list, prompt-only or naming each persona's served adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundry.cli.main import app
from foundry.data.personas import require_contract
from foundry.steering.variants import resolve_variant
from tests.conftest import SAMPLE_DIR

runner = CliRunner()
SAMPLE_SLUGS = sorted(p.name for p in (SAMPLE_DIR / "personas").iterdir())
URL = "http://127.0.0.1:8000/v1"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    import foundry.cli.common

    for console in (foundry.cli.common.console, foundry.cli.common.err_console):
        monkeypatch.setattr(console, "width", 400)


def export(config, out: Path, *args: str):
    return runner.invoke(
        app,
        ["prompts", "export", "--format", "faultline", "--out", str(out), *args]
        + ["--config", str(config.root / "foundry.yaml")],
    )


def test_faultline_export_gives_each_persona_its_name_and_the_prompt_variants_system_prompt(
    config, tmp_path
):
    out = tmp_path / "personas.json"
    result = export(config, out)
    assert result.exit_code == 0, result.output
    assert f"{len(SAMPLE_SLUGS)} persona(s) in {out}" in result.output
    entries = json.loads(out.read_text())
    assert [e["id"] for e in entries] == SAMPLE_SLUGS
    assert all(list(e) == ["name", "system_prompt", "id"] for e in entries)
    for entry in entries:
        contract = require_contract(config.persona_dir(entry["id"]))
        assert entry["name"] == contract.name
        assert entry["system_prompt"] == resolve_variant(config, contract, "prompt").system


def test_faultline_export_with_a_base_url_names_each_local_adapter_by_its_slug(config, tmp_path):
    out = tmp_path / "personas.json"
    result = export(config, out, "--persona", "tobias-renn", "--base-url", URL)
    assert result.exit_code == 0, result.output
    assert f"1 persona(s) in {out}" in result.output
    assert json.loads(out.read_text()) == [
        {
            "name": "Tobias Renn",
            "system_prompt": "",  # as the dpo variant: the adapters were trained without one
            "id": "tobias-renn",
            "model": "tobias-renn",
            "base_url": URL,
        }
    ]


@pytest.mark.slow
def test_faultline_export_for_together_uses_the_recorded_model_and_names_an_undeployed_persona(
    config, tmp_path
):
    from deploy.bundle import bundle_from_registry
    from deploy.records import record_deployment
    from deploy.smoke import SmokeResult
    from deploy.target import Remote
    from registry.tracking import open_client
    from tests.deploy_support import register_lora

    version = register_lora(config, "priya-castellanos", "meta-llama/Llama-3.2-1B-Instruct")
    bundle = bundle_from_registry(config, "priya-castellanos", version)
    served = "someone/persona-priya-castellanos-0123456789ab"
    record_deployment(
        open_client(config), "together", "priya-castellanos", version, bundle,
        Remote("model-id-1", served), SmokeResult(served, "ok", 0.5),
    )  # fmt: skip
    together = "https://api.together.xyz/v1"
    out = tmp_path / "personas.json"

    result = export(
        config, out, "--persona", "priya-castellanos", "--target", "together",
        "--base-url", together,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [entry] = json.loads(out.read_text())
    assert (entry["id"], entry["model"], entry["base_url"]) == (
        "priya-castellanos", served, together,
    )  # fmt: skip

    before = out.read_bytes()
    result = export(
        config, out, "--persona", "priya-castellanos", "--persona", "jonah-okafor",
        "--target", "together", "--base-url", together,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no deployment on together recorded for jonah-okafor" in result.output
    assert "foundry deploy --target together --persona jonah-okafor" in result.output
    assert out.read_bytes() == before


def test_a_failed_faultline_export_leaves_the_earlier_file_untouched(config, tmp_path):
    out = tmp_path / "out" / "personas.json"
    assert export(config, out).exit_code == 0
    before = out.read_bytes()
    (config.persona_dir("jonah-okafor") / "contract.yaml").write_text("name: [unclosed\n")
    result = export(config, out)
    assert result.exit_code == 1
    assert "jonah-okafor" in result.output
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["personas.json"]  # no temporary left


def test_faultline_export_refuses_two_personas_with_one_display_name(config, tmp_path):
    contract = config.persona_dir("jonah-okafor") / "contract.yaml"
    contract.write_text(contract.read_text().replace("name: Jonah Okafor", "name: Tobias Renn"))
    result = export(config, tmp_path / "personas.json")
    assert result.exit_code == 1
    assert "jonah-okafor and tobias-renn are both named 'Tobias Renn'" in result.output
    assert not (tmp_path / "personas.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "together"], "give the endpoint with --base-url"),
        (["--base-url", "127.0.0.1:8000"], "expected an http(s) URL"),
        (["--format", "markdown", "--base-url", URL], "apply to --format faultline only"),
    ],
)
def test_faultline_export_options_that_cannot_work_exit_2(config, tmp_path, args, message):
    result = export(config, tmp_path / "personas.json", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())  # the panel wraps it
    assert not (tmp_path / "personas.json").exists()
