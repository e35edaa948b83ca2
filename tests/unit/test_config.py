"""Loading `foundry.yaml`: defaults, validation messages, environment overrides, paths, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundry.config import FoundryConfig, Settings, load_config
from foundry.errors import ConfigError
from tests.conftest import REPO_ROOT

SECRET = "fake-anthropic-key-0123456789-secret"


def write_config(folder: Path, text: str, name: str = "foundry.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, environ={} if environ is None else environ)
    return str(excinfo.value)


# Defaults and files


def test_defaults_apply_when_there_is_no_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.source is None
    assert config.root == tmp_path.resolve()
    assert config.personas.test_fraction == 0.1
    assert config.personas.max_chunk_chars == 1200
    assert config.base_model.name == "tiny"
    assert config.data_dir == tmp_path.resolve() / "data"


def test_config_file_in_working_directory_is_found_without_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "personas:\n  test_fraction: 0.25\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.personas.test_fraction == 0.25
    assert config.source == path.resolve()


def test_empty_config_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "# nothing set\n"), environ={})
    assert config.model_dump() == FoundryConfig().model_dump()


def test_values_are_read_from_the_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "personas:\n"
        "  test_fraction: 0.3\n"
        "  include: [dylan-patel]\n"
        "  csv_text_column: body\n"
        "base_model:\n"
        "  name: Qwen/Qwen2.5-0.5B-Instruct\n"
        "training:\n"
        "  seed: 7\n",
    )
    config = load_config(path, environ={})
    assert config.personas.test_fraction == 0.3
    assert config.personas.include == ["dylan-patel"]
    assert config.personas.csv_text_column == "body"
    assert config.base_model.name == "Qwen/Qwen2.5-0.5B-Instruct"
    assert config.training.seed == 7
    assert config.personas.min_items == 2  # untouched keys keep their defaults
    assert config.source == path.resolve()


def test_a_section_left_empty_gives_its_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "personas:\n  # test_fraction: 0.2\ntraining:\n  seed: 3\n")
    config = load_config(path, environ={})
    assert config.personas.test_fraction == 0.1
    assert config.training.seed == 3


def test_repository_config_loads() -> None:
    config = load_config(REPO_ROOT / "foundry.yaml", environ={})
    assert config.root == REPO_ROOT
    assert config.data_dir == REPO_ROOT / "data"
    assert config.examples_dir == REPO_ROOT / "examples" / "sample"
    assert config.examples_dir.is_dir()


# Validation messages


def test_unknown_key_error_names_key_file_and_close_spelling(tmp_path: Path) -> None:
    path = write_config(tmp_path, "personas:\n  test_fractoin: 0.2\n")
    message = config_error(path)
    assert str(path) in message
    assert "`personas.test_fractoin`: unknown key" in message
    assert "did you mean `test_fraction`?" in message
    assert "valid keys here: include, test_fraction" in message


def test_unknown_section_error_suggests_the_close_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, "persona:\n  test_fraction: 0.2\n")
    message = config_error(path)
    assert str(path) in message
    assert "`persona`: unknown key" in message
    assert "did you mean `personas`?" in message


def test_an_empty_unknown_section_is_still_reported(tmp_path: Path) -> None:
    path = write_config(tmp_path, "personaz:\n")
    message = config_error(path)
    assert "`personaz`: unknown key (did you mean `personas`?)" in message


def test_invalid_value_error_names_key_and_shows_value(tmp_path: Path) -> None:
    path = write_config(tmp_path, "personas:\n  test_fraction: 1.5\n")
    message = config_error(path)
    assert str(path) in message
    assert "`personas.test_fraction`" in message
    assert "(got 1.5)" in message


def test_invalid_choice_error_names_key_and_shows_value(tmp_path: Path) -> None:
    path = write_config(tmp_path, "training:\n  backend: tensorflow\n")
    message = config_error(path)
    assert "`training.backend`" in message
    assert "'tensorflow'" in message


def test_lora_roots_must_be_a_list_of_named_folders(tmp_path: Path) -> None:
    text = "deploy:\n  local:\n    lora_roots: {}\n"
    config = load_config(write_config(tmp_path, text.format("[adapters, /srv/loras]")), environ={})
    assert config.deploy.local.lora_roots == ["adapters", "/srv/loras"]
    empty = config_error(write_config(tmp_path, text.format("[adapters, '']")))
    assert "`deploy.local.lora_roots`" in empty and "project folder is always allowed" in empty
    assert "`deploy.local.lora_roots`" in config_error(write_config(tmp_path, text.format("x")))


def test_every_invalid_key_is_reported_at_once(tmp_path: Path) -> None:
    path = write_config(tmp_path, "personas:\n  test_fraction: 0\n  min_items: 1\n")
    message = config_error(path)
    assert "`personas.test_fraction`" in message
    assert "`personas.min_items`" in message


def test_include_with_a_path_is_rejected_and_a_slug_suggested(tmp_path: Path) -> None:
    path = write_config(tmp_path, "personas:\n  include: ['../etc']\n")
    message = config_error(path)
    assert "`personas.include`" in message
    assert "'../etc' is not a valid slug" in message
    assert "'etc'" in message


def test_top_level_list_is_rejected(tmp_path: Path) -> None:
    path = write_config(tmp_path, "- personas\n- training\n")
    message = config_error(path)
    assert str(path) in message
    assert "top level must be a mapping of sections, got list" in message


def test_invalid_yaml_error_names_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "personas:\n  include: [a, b\n")
    message = config_error(path)
    assert message.startswith(f"{path}: not valid YAML")
    assert "fix the syntax" in message


def test_non_utf8_config_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "foundry.yaml"
    path.write_bytes(b"base_model:\n  name: caf\xe9\n")
    message = config_error(path)
    assert str(path) in message
    assert "save it as UTF-8" in message


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    message = config_error(missing)
    assert str(missing) in message
    assert "not found" in message


def test_config_path_that_is_a_folder_is_an_error_naming_the_file_to_pass(tmp_path: Path) -> None:
    message = config_error(tmp_path)
    assert f"{tmp_path} is a folder" in message
    assert str(tmp_path / "foundry.yaml") in message


def test_missing_file_named_by_foundry_config_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "elsewhere.yaml"
    message = config_error(None, {"FOUNDRY_CONFIG": str(missing)})
    assert str(missing) in message
    assert "not found" in message


def test_foundry_config_names_the_file_to_load(tmp_path: Path) -> None:
    path = write_config(tmp_path, "training:\n  seed: 11\n", name="other.yaml")
    config = load_config(environ={"FOUNDRY_CONFIG": str(path)})
    assert config.training.seed == 11
    assert config.source == path.resolve()


# Environment overrides


def test_environment_override_is_applied() -> None:
    config = load_config(
        REPO_ROOT / "foundry.yaml", environ={"FOUNDRY_PERSONAS__TEST_FRACTION": "0.3"}
    )
    assert config.personas.test_fraction == 0.3


def test_environment_override_wins_over_the_file_and_keeps_other_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, "personas:\n  test_fraction: 0.2\n  min_items: 5\n")
    environ = {
        "FOUNDRY_PERSONAS__TEST_FRACTION": "0.3",
        "FOUNDRY_BASE_MODEL__NAME": "Qwen/Qwen2.5-7B-Instruct",
        "FOUNDRY_PERSONAS__INCLUDE": "[a, b]",
    }
    config = load_config(path, environ=environ)
    assert config.personas.test_fraction == 0.3
    assert config.personas.min_items == 5
    assert config.personas.include == ["a", "b"]
    assert config.base_model.name == "Qwen/Qwen2.5-7B-Instruct"


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    environ = {"FOUNDRY_ANTHROPIC_API_KEY": "x", "HOME": "/root", "OTHER__THING": "1"}
    assert load_config(path, environ=environ).model_dump() == FoundryConfig().model_dump()


def test_environment_override_with_bad_value_names_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    message = config_error(path, {"FOUNDRY_PERSONAS__TEST_FRACTION": "lots"})
    variable = "FOUNDRY_PERSONAS__TEST_FRACTION"
    assert f"`personas.test_fraction` (from environment variable {variable})" in message
    assert "'lots'" in message


def test_environment_override_with_unknown_key_names_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    message = config_error(path, {"FOUNDRY_PERSONAS__TEST_FRACTON": "0.2"})
    assert "FOUNDRY_PERSONAS__TEST_FRACTON" in message
    assert "did you mean `test_fraction`?" in message


def test_environment_override_of_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    message = config_error(path, {"FOUNDRY_PERSONA__EVAL_FRACTION": "0.2"})
    assert "environment variable FOUNDRY_PERSONA__EVAL_FRACTION" in message
    assert "unknown section `persona`" in message
    assert "did you mean `personas`?" in message


# Paths


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    path = write_config(project, "paths:\n  data_dir: corpora\n  cache_dir: ../shared-cache\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path, environ={})
    assert config.root == project.resolve()
    assert config.data_dir == project.resolve() / "corpora"
    assert config.personas_dir == project.resolve() / "corpora" / "personas"
    assert config.topics_file == project.resolve() / "corpora" / "topics.yaml"
    assert config.cache_dir == tmp_path.resolve() / "shared-cache"


def test_relative_config_path_is_resolved_when_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path / "project", "")
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("project/foundry.yaml"), environ={})
    monkeypatch.chdir(tmp_path / "project")
    assert config.data_dir == tmp_path.resolve() / "project" / "data"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "absolute-data"
    path = write_config(tmp_path / "project", f"paths:\n  data_dir: {target}\n")
    assert load_config(path, environ={}).data_dir == target


def test_persona_dir_is_under_personas_dir(config: FoundryConfig) -> None:
    assert config.persona_dir("jonah-okafor") == config.personas_dir / "jonah-okafor"


@pytest.mark.parametrize("slug", ["../etc", "..", "a/b", "/etc", "Jonah"])
def test_persona_dir_rejects_a_name_that_could_escape(config: FoundryConfig, slug: str) -> None:
    with pytest.raises(ValueError, match="is not a valid slug"):
        config.persona_dir(slug)


# Config hash


def test_config_hash_changes_when_a_setting_changes(tmp_path: Path) -> None:
    base = load_config(write_config(tmp_path / "a", ""), environ={})
    changed = load_config(
        write_config(tmp_path / "b", "personas:\n  test_fraction: 0.2\n"), environ={}
    )
    assert len(base.config_hash()) == 16
    assert base.config_hash() != changed.config_hash()


def test_config_hash_ignores_paths_and_project_location(tmp_path: Path) -> None:
    base = load_config(write_config(tmp_path / "a", ""), environ={})
    moved = load_config(
        write_config(tmp_path / "b", "paths:\n  data_dir: other\n  cache_dir: /tmp/c\n"),
        environ={},
    )
    assert base.config_hash() == moved.config_hash()


def test_config_hash_changes_with_an_environment_override(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    plain = load_config(path, environ={})
    overridden = load_config(path, environ={"FOUNDRY_TRAINING__SEED": "1"})
    assert plain.config_hash() != overridden.config_hash()


# Secrets


def test_settings_reads_anthropic_key_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOUNDRY_ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    settings = Settings()
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in settings.model_dump_json()


def test_settings_prefers_the_foundry_prefixed_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "plain")
    monkeypatch.setenv("FOUNDRY_ANTHROPIC_API_KEY", SECRET)
    settings = Settings()
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == SECRET


def test_settings_key_is_none_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "FOUNDRY_ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().anthropic_api_key is None


# Training defaults by kind of base model


@pytest.mark.parametrize(
    ("name", "kind", "sft_rate", "dpo_rate", "checkpointing"),
    [
        ("tiny", "tiny", 6e-3, 5e-4, False),
        ("smollm2", "smollm2", 3e-4, 1e-4, False),
        ("Qwen/Qwen2.5-7B-Instruct", "pretrained", 2e-5, 5e-6, True),
    ],
)
def test_empty_stage_settings_resolve_by_the_kind_of_base(
    tmp_path: Path, name: str, kind: str, sft_rate: float, dpo_rate: float, checkpointing: bool
) -> None:
    config = load_config(write_config(tmp_path, f"base_model: {{name: {name}}}\n"), environ={})
    assert config.base_model.kind == kind
    sft, dpo = (config.training.resolved(stage, kind) for stage in ("sft", "dpo"))  # type: ignore[arg-type]
    assert (sft.learning_rate, dpo.learning_rate) == (sft_rate, dpo_rate)
    assert sft.activation_checkpointing is dpo.activation_checkpointing is checkpointing
    assert sft.max_length == (384 if kind == "smollm2" else 512)
    assert config.training.sft.learning_rate is None  # the file's value stays empty


def test_a_stage_setting_given_in_the_file_wins_over_the_base_default(tmp_path: Path) -> None:
    text = (
        "base_model: {name: smollm2}\ntraining:\n  sft: {learning_rate: 1.0e-4, max_length: 200}\n"
    )
    config = load_config(write_config(tmp_path, text), environ={})
    sft = config.training.resolved("sft", config.base_model.kind)
    assert (sft.learning_rate, sft.max_length, sft.epochs, sft.batch_size) == (1e-4, 200, 1.0, 2)


def test_the_executor_and_ray_settings_change_no_cache_key(tmp_path: Path) -> None:
    local = load_config(write_config(tmp_path / "a", ""), environ={})
    on_ray = load_config(
        write_config(
            tmp_path / "b",
            "orchestration: {executor: ray, ray: {address: 'ray://head:10001', "
            "train: {num_gpus: 1, resources: {a100: 1}}}}\n"
            "paths: {shared_url: 's3://bucket/foundry'}\n",
        ),
        environ={},
    )
    assert on_ray.orchestration.ray.train.num_gpus == 1
    assert local.config_hash() == on_ray.config_hash()


def test_an_unknown_executor_and_a_negative_gpu_count_name_their_keys(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "orchestration: {executor: dask, ray: {vectors: {num_gpus: -1}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert "orchestration.executor" in message and "dask" in message
    assert "orchestration.ray.vectors.num_gpus" in message


def test_the_executor_can_be_switched_from_the_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    environ = {
        "FOUNDRY_ORCHESTRATION__EXECUTOR": "ray",
        "FOUNDRY_ORCHESTRATION__RAY__TRAIN__NUM_GPUS": "1",
    }
    config = load_config(path, environ=environ)
    assert config.orchestration.executor == "ray"
    assert config.orchestration.ray.train.num_gpus == 1
