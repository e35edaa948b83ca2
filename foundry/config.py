"""`foundry.yaml` loaded into typed, validated sections, with `FOUNDRY_...` environment overrides.

Entry points: `load_config(path)` and `load_settings()` (secrets, from the environment only).
Every setting has a default and a one-sentence description; unknown keys are errors that name the
key, the file and the closest valid spelling. Relative paths resolve against the folder that holds
the config file (the project root), never against the working directory.

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
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.config import DeployConfig
from foundry.costs.config import CostsConfig
from foundry.errors import ConfigError
from foundry.slugs import check_slug
from foundry.synthesis.config import SynthesisConfig
from foundry.training.config import BaseModelConfig, TrainingConfig

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


class PersonasConfig(_Section):
    include: list[str] = Field(
        default_factory=list, description="Persona slugs to use; empty means every persona found."
    )
    eval_fraction: float = Field(
        0.15, gt=0.0, lt=1.0, description="Share of each persona's items held out for evaluation."
    )
    min_items: int = Field(
        2,
        ge=2,
        description="Fewest corpus items a trainable persona may have (one train, one eval).",
    )
    max_chunk_chars: int = Field(
        1200, ge=200, description="Longest chunk a Markdown or text document is split into."
    )
    min_chunk_chars: int = Field(
        80, ge=0, description="Shorter document paragraphs are joined to the next one."
    )
    near_duplicate_threshold: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="Word 3-gram Jaccard similarity at or above which two items are duplicates.",
    )
    csv_text_column: str = Field(
        "text", description="CSV column holding the text (`content` is also recognised)."
    )

    @field_validator("include")
    @classmethod
    def _slugs(cls, values: list[str]) -> list[str]:
        return [check_slug(v) for v in values]


class VersioningConfig(_Section):
    remote_url: str = Field(
        "",
        description="DVC remote (a folder, s3://, gs://, ...); empty means <cache_dir>/dvc-remote.",
    )
    remote_name: str = Field("local", description="Name of the DVC remote in .dvc/config.")
    push: bool = Field(True, description="Push the data to the remote after each `dvc add`.")


class EvaluationConfig(_Section):
    heldout_topic_fraction: float = Field(
        0.25, gt=0.0, lt=1.0, description="Share of debate topics kept out of training for eval."
    )
    variants: list[Literal["base", "prompt", "sft", "dpo", "steer", "dpo+steer"]] = Field(
        default_factory=lambda: ["base", "prompt", "sft", "dpo", "steer", "dpo+steer"],
        description="Variants evaluated by default (missing adapters or persona vectors are "
        "skipped with a note).",
    )
    prompts_per_persona: int = Field(
        0, ge=0, description="Held-out debate prompts each persona answers (0: all of them)."
    )
    heldout_items: int = Field(
        20, ge=1, description="Held-out corpus items per persona in the perplexity matrix."
    )
    max_new_tokens: int = Field(120, ge=8, description="Longest generated answer, in tokens.")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature of the answers.")
    seed: int = Field(0, ge=0, description="Seed of the sampled answers.")
    batch_size: int = Field(16, ge=1, description="Rows per generation and scoring batch.")
    judge: bool = Field(
        False,
        description="Ask Claude which of two answers is more like the persona (needs "
        "ANTHROPIC_API_KEY; uses `synthesis.model`, cached like synthesis).",
    )
    judge_budget_usd: float = Field(2.0, gt=0, description="Most dollars one judged run may spend.")
    embeddings: Literal["auto", "minilm", "tfidf"] = Field(
        "auto",
        description="Sentence embeddings for homogeneity: all-MiniLM-L6-v2, TF-IDF, or MiniLM "
        "with a TF-IDF fallback.",
    )


class PromotionConfig(_Section):
    """When a challenger becomes champion: absolute gates, then no regression on `compare`."""

    min_content_recall: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Least share of the persona's answers the content "
        "classifier attributes to it (chance is 1 / personas).",
    )
    min_style_recall: float = Field(
        0.0, ge=0, le=1, description="Least share the style classifier attributes to it."
    )
    max_fluency_nll: float = Field(
        8.0, gt=0, description="Most mean token NLL of the answers under the base model."
    )
    compare: list[str] = Field(
        default_factory=lambda: ["content_recall", "style_recall", "belief_margin"],
        description="Metrics a challenger must not regress against the champion.",
    )
    tolerance: float = Field(
        0.05, ge=0, description="How much worse than the champion a compared metric may be."
    )


class RegistryConfig(_Section):
    tracking_uri: str = Field(
        "",
        description="MLflow tracking URI; empty means MLFLOW_TRACKING_URI or <root>/mlflow.db.",
    )
    experiment: str = Field("persona-foundry", description="MLflow experiment name.")
    stage: Literal["sft", "dpo"] = Field(
        "dpo", description="Which trained adapter becomes the registered model version."
    )
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)


class OrchestrationConfig(_Section):
    """How the `retrain` flow runs its steps: processes, retries and time limits."""

    workers: int = Field(
        0,
        ge=0,
        description="Training processes at once (0: one per CPU core, at most one per persona "
        "to train; use 1 per GPU).",
    )
    threads_per_worker: int = Field(
        0, ge=0, description="Torch threads in each training process (0: cores / processes)."
    )
    retries: int = Field(
        2, ge=0, description="Retries of a remote step (synthesis, uploads) that failed whole."
    )
    retry_delay_s: float = Field(
        30.0, ge=0, description="First retry delay; each next retry waits twice as long."
    )
    train_timeout_s: float = Field(
        14400.0,
        gt=0,
        description="Longest one persona's SFT + DPO training may run (its process is stopped).",
    )
    eval_timeout_s: float = Field(7200.0, gt=0, description="Longest evaluation may run.")


class SteeringConfig(_Section):
    """Persona vectors: extraction, layer and strength selection, and the fluency guard."""

    enabled: bool = Field(
        False,
        description="Extract each persona's vector in the `retrain` flow after training (the "
        "`steer` and `dpo+steer` variants need it); `foundry vectors extract` works either way.",
    )
    family: Literal["persona", "one_vs_rest"] = Field(
        "one_vs_rest",
        description="The contrast that steers: `persona` (the persona vs a neutral assistant) or "
        "`one_vs_rest` (the persona vs the mean of the others); all are stored.",
    )
    layer: int = Field(
        0, ge=0, description="hidden_states index to steer at (0: the layer with the best AUC)."
    )
    prompts: int = Field(
        8, ge=2, description="Debate prompts answered under the contract and a neutral prompt."
    )
    max_texts: int = Field(
        64, ge=2, description="Most real train texts per persona read for the vectors."
    )
    alphas: list[float] = Field(
        default_factory=lambda: [0.0, 2.0, 4.0, 6.0, 8.0],
        min_length=2,
        description="Strengths swept (multiples of the raw mean-difference vector).",
    )
    sweep_prompts: int = Field(
        8, ge=1, description="Train-topic debate prompts answered at each strength of the sweep."
    )
    max_new_tokens: int = Field(60, ge=8, description="Longest answer in the sweep, in tokens.")
    fluency_tolerance: float = Field(
        0.5,
        ge=0.0,
        description="Most a strength may raise the answers' mean NLL under the base (nats per "
        "token) over the unsteered answers; a strength past it is refused.",
    )
    min_gain: float = Field(
        0.02,
        ge=0.0,
        description="Least attribution gain over no steering for a strength to be chosen "
        "(otherwise alpha 0 is kept and the note says steering did not help).",
    )

    @model_validator(mode="after")
    def _alphas_start_at_zero(self) -> SteeringConfig:
        if 0.0 not in self.alphas:
            raise ValueError("alphas must include 0.0: the sweep compares every strength with none")
        if any(a < 0 for a in self.alphas):
            raise ValueError("alphas must not be negative (steer away with `vectors` algebra)")
        return self


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
        # Where things live, how they are served and priced, and how long to wait for a remote
        # job change no result: they stay out, so editing them keeps every cache.
        unhashed = {
            "paths": True, "deploy": True, "costs": True,
            "training": {"together": {"poll_s", "timeout_s"}},
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


class Settings(BaseSettings):
    """Secrets and endpoints, from the environment only; never logged or written anywhere."""

    model_config = SettingsConfigDict(extra="ignore")

    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("FOUNDRY_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    together_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("FOUNDRY_TOGETHER_API_KEY", "TOGETHER_API_KEY")
    )
    fireworks_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("FOUNDRY_FIREWORKS_API_KEY", "FIREWORKS_API_KEY")
    )
    fireworks_account_id: str | None = Field(
        None, validation_alias=AliasChoices("FOUNDRY_FIREWORKS_ACCOUNT_ID", "FIREWORKS_ACCOUNT_ID")
    )
    together_project_id: str | None = Field(
        None, validation_alias=AliasChoices("FOUNDRY_TOGETHER_PROJECT_ID", "TOGETHER_PROJECT_ID")
    )
    together_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("FOUNDRY_TOGETHER_BASE_URL", "TOGETHER_BASE_URL"),
        description="Another Together endpoint (a test server); empty: the SDK's.",
    )
    fireworks_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("FOUNDRY_FIREWORKS_BASE_URL", "FIREWORKS_BASE_URL"),
        description="Another Fireworks endpoint (a test server); empty: the SDK's.",
    )
    anthropic_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("FOUNDRY_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"),
        description="Another Anthropic endpoint (a proxy, or a test server); empty: the SDK's.",
    )


def load_settings() -> Settings:
    """Read secrets from the environment; call it at the entry point, never at import."""
    return Settings()
