"""Exceptions and the problem records that validation collects.

Every user-facing failure names where it happened (file, line or record), what was wrong and how to
fix it. Validation gathers all problems of a persona before failing, so one run shows every fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


class FoundryError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(FoundryError):
    """`foundry.yaml` or an environment override is invalid."""


class DataError(FoundryError):
    """Persona data (contract, corpus, topics, import source) is invalid."""


class VersioningError(FoundryError):
    """DVC could not version the data."""


@dataclass(frozen=True)
class Problem:
    """One finding about the data: an error blocks training, a warning does not."""

    level: Literal["error", "warning"]
    path: Path | None
    where: str  # "line 12", "record 3 (id=mv-p001)", "field positions[2].stance", "" for whole file
    message: str
    fix: str = ""

    def __str__(self) -> str:
        location = str(self.path) if self.path else "<input>"
        if self.where:
            location += f", {self.where}"
        text = f"{location}: {self.message}"
        return f"{text}; {self.fix}" if self.fix else text


def raise_for_errors(problems: list[Problem], what: str) -> None:
    """Raise one `DataError` listing every error in `problems` (warnings are ignored)."""
    errors = [p for p in problems if p.level == "error"]
    if errors:
        lines = "\n".join(f"  - {p}" for p in errors)
        raise DataError(f"{what}: {len(errors)} error(s)\n{lines}")
