"""`foundry.yaml` loaded into typed, validated sections, with `FOUNDRY_...` environment overrides.

Entry points: `load_config(path)` and `load_settings()` (secrets, from the environment only).
Every setting has a default and a one-sentence description; unknown keys are errors that name the
key, the file and the closest valid spelling. Relative paths resolve against the folder that holds
the config file (the project root), never against the working directory.

Each stage's section is defined next to its package (`foundry/<stage>/config.py`,
`registry/config.py`, `deploy/config.py`); `FoundryConfig` assembles them under their YAML keys.

Environment overrides use a double underscore between levels, for example
`FOUNDRY_PERSONAS__EVAL_FRACTION=0.2` or `FOUNDRY_BASE_MODEL__NAME=Qwen/Qwen2.5-7B-Instruct`;
values are parsed as YAML scalars.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.config import DeployConfig
from foundry.costs.config import CostsConfig
from foundry.data.config import PersonasConfig, VersioningConfig
from foundry.debate.config import DebateConfig
from foundry.errors import ConfigError
from foundry.evaluation.config import EvaluationConfig
from foundry.orchestration.config import OrchestrationConfig
from foundry.slugs import check_slug
from foundry.steering.config import SteeringConfig
from foundry.synthesis.config import SynthesisConfig
from foundry.training.config import BaseModelConfig, TrainingConfig
from registry.config import RegistryConfig

CONFIG_FILENAME = "foundry.yaml"
ENV_PREFIX = "FOUNDRY_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsConfig(_Section):
    data_dir: Path = Field(Path("data"), description="Versioned persona data (DVC tracks it).")
    examples_dir: Path = Field(
        Path("examples/sample"), description="Sample data that seeds an empty data folder."
    )
    cache_dir: Path = Field(
        Path(".foundry"), description="Local caches and stores (tiny base model, DVC remote)."
    )
    shared_url: str = Field(
        "",
        description="fsspec URL every Ray node reaches (s3://bucket/foundry, a mounted folder): "
        "steps' inputs and adapters travel through it. Empty: the project folder itself is on "
        "a filesystem every node mounts at the same path.",
    )


class FoundryConfig(_Section):
    """The whole project configuration; sections fill in as stages land."""

    paths: PathsConfig = Field(default_factory=PathsConfig)
    personas: PersonasConfig = Field(default_factory=PersonasConfig)
    versioning: VersioningConfig = Field(default_factory=VersioningConfig)
    base_model: BaseModelConfig = Field(default_factory=BaseModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    costs: CostsConfig = Field(default_factory=CostsConfig)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    steering: SteeringConfig = Field(default_factory=SteeringConfig)
    debate: DebateConfig = Field(default_factory=DebateConfig)

    _root: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)
    _adapters_dir: Path | None = PrivateAttr(default=None)

    @property
    def root(self) -> Path:
        """The project root: the folder of the config file (or the working directory)."""
        return self._root

    @property
    def source(self) -> Path | None:
        """The config file this was loaded from, if any."""
        return self._source

    def resolve(self, path: Path) -> Path:
        """`path` made absolute against the project root."""
        return path if path.is_absolute() else (self._root / path).resolve()

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.paths.data_dir)

    @property
    def personas_dir(self) -> Path:
        return self.data_dir / "personas"

    @property
    def topics_file(self) -> Path:
        return self.data_dir / "topics.yaml"

    @property
    def conflicts_file(self) -> Path:
        """Optional: pairs of personas who disagree, with the question that would settle it."""
        return self.data_dir / "conflicts.yaml"

    @property
    def cache_dir(self) -> Path:
        return self.resolve(self.paths.cache_dir)

    @property
    def examples_dir(self) -> Path:
        return self.resolve(self.paths.examples_dir)

    @property
    def adapters_dir(self) -> Path:
        return self._adapters_dir or self.cache_dir / "adapters"

    def with_adapters_dir(self, folder: Path) -> FoundryConfig:
        """This config reading (and writing) adapters under `folder`: e.g. champions fetched
        from the registry, evaluated without touching the trained ones."""
        copy = self.model_copy()
        copy._adapters_dir = folder
        return copy

    def adapter_dir(self, slug: str, stage: str) -> Path:
        """Where persona `slug`'s adapter of `stage` (sft, dpo) lives once trained."""
        return self.adapters_dir / check_slug(slug) / check_slug(stage)

    def vector_dir(self, slug: str) -> Path:
        """Where persona `slug`'s persona vector lives once extracted (next to its adapters)."""
        return self.adapters_dir / check_slug(slug) / "vector"

    def persona_dir(self, slug: str) -> Path:
        """The folder of persona `slug`; the slug is checked, so no name escapes `data/`."""
        return self.personas_dir / check_slug(slug)

    def config_hash(self) -> str:
        """A short hash of the resolved settings (not of paths), for caching and lineage."""
        # Where things live, how they are served, priced and scheduled, and how long to wait for a
        # remote job change no result: they stay out, so editing them keeps every cache.
        training: dict[str, Any] = {"together": {"poll_s", "timeout_s"}}
        if self.training.experts == "single":  # the expert settings then change nothing
            training |= {"experts": True, "expert_weights": True, "expert_gate": True}
        unhashed = {
            "paths": True, "deploy": True, "costs": True, "orchestration": True,
            "training": training,
        }  # fmt: skip
        payload = self.model_dump(mode="json", exclude=unhashed)
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_config(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> FoundryConfig:
    """Load `path` (default: ./foundry.yaml when present, else the defaults), then env overrides.

    Raises:
        ConfigError: the file is missing (when named explicitly), is not YAML, or a key is unknown
            or invalid; the message names the key and the file.
    """
    environ = os.environ if environ is None else environ
    explicit = path is not None or bool(environ.get("FOUNDRY_CONFIG"))
    path = Path(path or environ.get("FOUNDRY_CONFIG") or CONFIG_FILENAME)
    raw: dict[str, Any] = {}
    if path.is_dir():
        raise ConfigError(
            f"{path} is a folder; pass the config file, for example {path / CONFIG_FILENAME}"
        )
    if path.exists():
        raw = _read_yaml_mapping(path)
    elif explicit:
        raise ConfigError(f"config file {path} not found; pass an existing --config or create it")
    from_env = _apply_env_overrides(raw, environ)
    try:
        config = FoundryConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, path, from_env)) from None
    config._root = (path.parent if path.exists() else Path.cwd()).resolve()
    config._source = path.resolve() if path.exists() else None
    return config


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections, got {type(data).__name__}"
        )
    # A section whose keys are all commented out reads as null; it means "all defaults".
    return {key: {} if value is None else value for key, value in data.items()}


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge `FOUNDRY_A__B=value` into `raw`; return {"a.b": "FOUNDRY_A__B"} for messages."""
    sections = FoundryConfig.model_fields
    applied: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        if keys[0] not in sections:
            raise ConfigError(
                f"environment variable {name}: unknown section `{keys[0]}`"
                f"{_did_you_mean(keys[0], sections)}; sections: {', '.join(sections)}"
            )
        node = raw
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        try:
            node[keys[-1]] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            node[keys[-1]] = value
        applied[".".join(keys)] = name
    return applied


def _describe_validation_error(exc: ValidationError, path: Path, from_env: dict[str, str]) -> str:
    lines = [f"{path}: invalid configuration"]
    for error in exc.errors():
        dotted = ".".join(str(part) for part in error["loc"])
        key = f"`{dotted}`"
        if dotted in from_env:
            key += f" (from environment variable {from_env[dotted]})"
        if error["type"] == "extra_forbidden":
            parent_keys = _fields_at(error["loc"][:-1])
            hint = _did_you_mean(str(error["loc"][-1]), parent_keys)
            lines.append(f"  - {key}: unknown key{hint}; valid keys here: {', '.join(parent_keys)}")
        else:
            lines.append(f"  - {key}: {error['msg']} (got {error.get('input')!r})")
    lines.append("See `foundry config show` for every key with its default.")
    return "\n".join(lines)


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = FoundryConfig
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _did_you_mean(word: str, choices: Any) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean `{match[0]}`?)" if match else ""


def _env(name: str) -> AliasChoices:
    """Read a setting from `FOUNDRY_<name>`, else from `<name>` (the SDK's own variable)."""
    return AliasChoices(f"{ENV_PREFIX}{name}", name)


class Settings(BaseSettings):
    """Secrets and endpoints, from the environment only; never logged or written anywhere."""

    model_config = SettingsConfigDict(extra="ignore")

    anthropic_api_key: SecretStr | None = Field(None, validation_alias=_env("ANTHROPIC_API_KEY"))
    together_api_key: SecretStr | None = Field(None, validation_alias=_env("TOGETHER_API_KEY"))
    fireworks_api_key: SecretStr | None = Field(None, validation_alias=_env("FIREWORKS_API_KEY"))
    fireworks_account_id: str | None = Field(None, validation_alias=_env("FIREWORKS_ACCOUNT_ID"))
    together_project_id: str | None = Field(None, validation_alias=_env("TOGETHER_PROJECT_ID"))
    together_base_url: str | None = Field(
        None,
        validation_alias=_env("TOGETHER_BASE_URL"),
        description="Another Together endpoint (a test server); empty: the SDK's.",
    )
    fireworks_base_url: str | None = Field(
        None,
        validation_alias=_env("FIREWORKS_BASE_URL"),
        description="Another Fireworks endpoint (a test server); empty: the SDK's.",
    )
    anthropic_base_url: str | None = Field(
        None,
        validation_alias=_env("ANTHROPIC_BASE_URL"),
        description="Another Anthropic endpoint (a proxy, or a test server); empty: the SDK's.",
    )
    serve_api_key: SecretStr | None = Field(
        None,
        validation_alias=f"{ENV_PREFIX}SERVE_API_KEY",
        description="The key `foundry serve` requires; `foundry deploy --target local` sends it "
        "to the server at `deploy.local.url`.",
    )


def load_settings() -> Settings:
    """Read secrets from the environment; call it at the entry point, never at import."""
    return Settings()
