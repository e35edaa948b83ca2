"""What persona-vector extraction works on: every persona's texts, and the model, handed in.

Public entry points: `read_steering_corpus(config)` (every persona's train and validation texts
framed by their debate prompts, the train topics extraction prompts with and the validation topics
the strength sweep prompts with),
`check_personas`, and `SteeringModel`: the protocol of the model a vector is read from and swept on
(`foundry.training.steering_model` provides one), so this stage never loads weights itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from foundry.config import FoundryConfig
from foundry.data.framing import BASE_ADAPTER, item_prompts
from foundry.data.schemas import DebateTopic, PersonaContract
from foundry.data.validation import validate_personas
from foundry.errors import FoundryError, raise_for_errors
from foundry.steering.activations import ResponseRow


class SteeringSetupError(FoundryError):
    """Vectors cannot be extracted: too few personas, prompts or texts."""


class SteeringModel(Protocol):
    """The model a persona vector is read from and swept on.

    `model` is the base with each selected persona's DPO adapter attached (when trained), `dpo`
    maps a persona slug to its loaded adapter name, `identity` names the base model.
    """

    model: Any
    tokenizer: Any
    identity: str
    dpo: dict[str, str]

    def answers(
        self,
        prompts: Sequence[str],
        *,
        system: str | None = None,
        adapter: str = BASE_ADAPTER,
        steer: tuple[str, ...] = (),
    ) -> list[str]:
        """One answer per prompt, through `adapter`, steered by the registered vectors `steer`."""
        ...

    def base_nll(self, prompts: Sequence[str], answers: Sequence[str]) -> float:
        """The answers' mean NLL per token under the bare, unsteered base."""
        ...

    def adapter_digest(self, slug: str) -> str:
        """The content digest of `slug`'s DPO adapter (recorded with the vector)."""
        ...


@dataclass
class SteeringCorpus:
    """Everything extraction reads, for every persona (the contrast needs them all)."""

    contracts: dict[str, PersonaContract]
    train: dict[str, list[ResponseRow]]
    validation: dict[str, list[ResponseRow]]
    train_texts: dict[str, list[str]]
    extraction_topics: list[DebateTopic]
    sweep_topics: list[DebateTopic]


def read_steering_corpus(config: FoundryConfig) -> SteeringCorpus:
    """Every persona's train and validation texts framed by their debate prompts, and the topics
    that extraction (train) and the sweep (validation) prompt with; never the evaluation's.

    Raises:
        DataError: the persona data has errors.
        SteeringSetupError: fewer than two personas, no train topics, or no validation texts.
    """
    summary = validate_personas(config)
    raise_for_errors(summary.problems, f"data in {config.data_dir}")
    personas = [p for p in summary.personas if p.contract is not None]
    if len(personas) < 2:
        raise SteeringSetupError(
            f"persona vectors contrast a persona with the others, and {config.personas_dir} has "
            f"{len(personas)} persona(s) with a contract; add another persona"
        )
    topics = summary.topic_split.framing
    if not topics:
        raise SteeringSetupError(f"{config.topics_file} has no train topics to prompt with")
    settings = config.steering
    train_topics = summary.topic_split.train or topics
    extraction = [train_topics[i % len(train_topics)] for i in range(settings.prompts)]
    # The strength is chosen on validation (dev) topics: never evaluation's, never extraction's.
    dev = summary.topic_split.dev or topics
    sweep_topics = [dev[i % len(dev)] for i in range(settings.sweep_prompts)]
    contracts = {p.slug: p.contract for p in personas if p.contract is not None}
    corpus = SteeringCorpus(contracts, {}, {}, {}, extraction, sweep_topics)
    for persona in personas:
        train = [i for i in persona.items if i.split == "train"]
        held = [i for i in persona.items if i.split == "validation"]
        corpus.train_texts[persona.slug] = [i.text for i in train]
        prompts = item_prompts(train[: settings.max_texts] + held, topics)
        corpus.train[persona.slug] = [
            ResponseRow(prompts[i.id], i.text) for i in train[: settings.max_texts]
        ]
        corpus.validation[persona.slug] = [ResponseRow(prompts[i.id], i.text) for i in held]
        if not corpus.validation[persona.slug]:
            raise SteeringSetupError(
                f"{persona.slug} has no validation corpus items to choose a layer with; raise "
                "`personas.validation_fraction` or add texts"
            )
    return corpus


def check_personas(corpus: SteeringCorpus, config: FoundryConfig, personas: Sequence[str]) -> None:
    """Raise `SteeringSetupError` naming any slug that is not a persona of the project."""
    unknown = [s for s in personas if s not in corpus.contracts]
    if unknown:
        raise SteeringSetupError(
            f"no persona {', '.join(unknown)} in {config.personas_dir}; "
            f"personas: {', '.join(corpus.contracts)}"
        )
