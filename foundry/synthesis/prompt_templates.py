"""Versioned prompt templates for synthesis (`foundry/synthesis/prompts/<name>.yaml`).

`load_template(name)` reads one by the name configs use (`synthesis.template`, e.g.
`debate-turn-v1`); a path to a YAML file of the same shape works too, for trying a new wording.
The template name goes into every cache key, so changing wording means a new file, never an edit.
An optional part that renders empty for every request made before it existed (`beliefs`, the
belief-path block) can be added to a template in place: no earlier request's key changes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundry.synthesis.jobs import SynthesisError

TEMPLATE_PACKAGE = "foundry.synthesis.prompts"


class MoveInstructions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim: str
    challenge: str
    challenge_conventional: str
    clarification: str
    concession: str
    reframe: str


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    system: str
    user: str
    moves: MoveInstructions
    critique: str
    revise: str
    generic_system: str
    violation: str
    beliefs: str = Field(
        "",
        description="The block (with `{path}`) that fills `{beliefs}` in `user` when the persona "
        "has a belief graph; empty, or no `{beliefs}` slot, keeps belief graphs out of requests.",
    )

    @property
    def has_beliefs(self) -> bool:
        """Whether requests made with this template can carry a belief path."""
        return bool(self.beliefs) and "{beliefs}" in self.user


def available_templates() -> list[str]:
    names = (p.name for p in resources.files(TEMPLATE_PACKAGE).iterdir())
    return sorted(n.removesuffix(".yaml") for n in names if n.endswith(".yaml"))


def load_template(name: str) -> PromptTemplate:
    """The template called `name` (a shipped template name, or a path to a YAML file).

    Raises:
        SynthesisError: no such template, not valid YAML, or a key is missing or unknown.
    """
    path = Path(name)
    if path.suffix in {".yaml", ".yml"} and path.is_file():
        text, where = path.read_text(encoding="utf-8"), str(path)
    else:
        resource = resources.files(TEMPLATE_PACKAGE) / f"{name}.yaml"
        if not resource.is_file():
            raise SynthesisError(
                f"no prompt template {name!r}; `synthesis.template` must be one of "
                f"{', '.join(available_templates())}, or a path to a .yaml template"
            )
        text, where = resource.read_text(encoding="utf-8"), f"template {name}"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SynthesisError(f"{where}: not valid YAML ({exc}); fix the syntax") from None
    try:
        return PromptTemplate.model_validate({**(raw or {}), "name": path.stem})
    except ValidationError as exc:
        problems = "; ".join(f"`{'.'.join(map(str, e['loc']))}`: {e['msg']}" for e in exc.errors())
        raise SynthesisError(f"{where}: not a prompt template ({problems})") from None
