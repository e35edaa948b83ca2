"""What the evaluation report leads with: each variant's headline numbers with their 95 %
intervals, and a plain-language verdict against the prompt-only baseline.

Public entry points: `headline_rows(report)` (the table the report and `foundry eval` open with),
`verdicts(report, guards)` (one `Verdict` per variant) and `heldout_sentence(report)` (what the
classifiers were fitted on, and how many prompts were held out). A verdict claims a difference
only when the intervals do not overlap (the variant's lower bound above the baseline's upper
bound, or the reverse) and says plainly when there is none, so a reader never takes noise for a
result. The fluency and copying limits are the promotion gate's (`registry.promotion`), passed in
as numbers (`Guards`), since evaluation sits below the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from foundry.config import FoundryConfig
from foundry.evaluation.schema import (
    CONFLICT_PREFIX,
    ConflictFidelity,
    EvalReport,
    VariantMetrics,
)

BASELINE = "prompt"  # the prompt-only variant every other variant is compared with
MISSING = "-"

Cell = tuple[float | None, list[float] | None]
# column -> (value, its 95 % interval) of one variant, in the order the report shows them
HEADLINE: dict[str, Callable[[VariantMetrics], Cell]] = {
    "conflict fidelity": lambda m: (
        (m.conflicts.likelihood, m.conflicts.likelihood_interval) if m.conflicts else (None, None)
    ),
    "stance": lambda m: (
        (m.stance.accuracy, m.stance.accuracy_interval) if m.stance else (None, None)
    ),
    "belief dominance": lambda m: (
        (m.belief.diagonal_dominance, m.belief.dominance_interval) if m.belief else (None, None)
    ),
    "content attribution": lambda m: (
        (m.attribution_content.accuracy, m.attribution_content.accuracy_interval)
        if m.attribution_content
        else (None, None)
    ),
    "style attribution": lambda m: (
        (m.attribution_style.accuracy, m.attribution_style.accuracy_interval)
        if m.attribution_style
        else (None, None)
    ),
    "copy rate": lambda m: (
        (m.memorisation.copy_rate, m.memorisation.copy_rate_interval)
        if m.memorisation
        else (None, None)
    ),
    "fluency (NLL)": lambda m: (
        (m.fluency.nll_under_base, m.fluency.nll_interval) if m.fluency else (None, None)
    ),
    "answer divergence (A-B cosine)": lambda m: (
        (m.conflicts.answer_cosine, m.conflicts.answer_cosine_interval)
        if m.conflicts
        else (None, None)
    ),
}


@dataclass(frozen=True)
class Guards:
    """The promotion gate's limits a verdict checks: the most fluency NLL and copy rate."""

    max_fluency_nll: float
    max_copy_rate: float

    @classmethod
    def from_config(cls, config: FoundryConfig) -> Guards:
        """The limits of `registry.promotion` in `config`."""
        promotion = config.registry.promotion
        return cls(promotion.max_fluency_nll, promotion.max_copy_rate)


@dataclass(frozen=True)
class Verdict:
    """One variant against the prompt-only baseline, as findings and as a sentence."""

    variant: str
    beliefs: Literal["more", "fewer", "no difference", "baseline", "not measured"]
    is_fluent: bool | None  # None: not measured or no limit given
    is_copying: bool | None
    text: str


def format_cell(value: float | None, interval: list[float] | None, digits: int = 2) -> str:
    """`0.62 [0.48, 0.75]`, `0.62` without an interval, `-` when not measured."""
    if value is None:
        return MISSING
    text = f"{value:.{digits}f}"
    return f"{text} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]" if interval else text


def headline_rows(report: EvalReport) -> list[dict[str, str]]:
    """One row per evaluated variant: `variant`, then every `HEADLINE` column, formatted."""
    rows = []
    for name in list(report.variants) + [v for v in report.metrics if v not in report.variants]:
        metrics = report.metrics.get(name)
        cells = {
            column: format_cell(*read(metrics)) if metrics else MISSING
            for column, read in HEADLINE.items()
        }
        rows.append({"variant": name} | cells)
    return rows


def verdicts(report: EvalReport, guards: Guards | None) -> list[Verdict]:
    """Each evaluated variant against the prompt-only baseline (`BASELINE`).

    Args:
        report: the evaluation report.
        guards: the promotion gate's limits; None leaves fluency and copying unjudged.

    Returns:
        One `Verdict` per variant with metrics, in the report's order. Beliefs (conflict
        fidelity) differ only when the intervals are apart; fluency is within the guard when the
        NLL is at most `max_fluency_nll`; an answer set copies when its copy rate is above
        `max_copy_rate`.
    """
    found = []
    for name in list(report.variants) + [v for v in report.metrics if v not in report.variants]:
        if name in report.metrics:
            found.append(_verdict(report, name, guards))
    return found


def _verdict(report: EvalReport, name: str, guards: Guards | None) -> Verdict:
    metrics = report.metrics[name]
    beliefs, belief_text = _beliefs(report, name)
    is_fluent, fluency_text = _fluency(metrics, guards)
    is_copying, copy_text = _copying(metrics, guards)
    if beliefs in ("more", "fewer") and is_copying:
        copy_text = "but " + copy_text
    text = f"{name}: {belief_text}; {fluency_text}; {copy_text}."
    return Verdict(name, beliefs, is_fluent, is_copying, text)


def _beliefs(report: EvalReport, name: str) -> tuple[str, str]:
    """How the variant's conflict fidelity compares with the baseline's, and the words for it."""
    if name == BASELINE:
        return "baseline", "the prompt-only baseline the other variants are compared with"
    mine, why = _fidelity(report, name)
    if mine is None:
        return "not measured", f"beliefs not measured ({why})"
    if BASELINE not in report.metrics:
        return "not measured", (
            f"beliefs not compared (the prompt-only variant `{BASELINE}` was not evaluated)"
        )
    theirs, why = _fidelity(report, BASELINE)
    if theirs is None:
        return "not measured", f"beliefs not compared (prompt-only: {why})"
    numbers = (
        f"conflict fidelity {format_cell(mine.likelihood, mine.likelihood_interval)} vs "
        f"{format_cell(theirs.likelihood, theirs.likelihood_interval)}"
    )
    if mine.likelihood_interval is None or theirs.likelihood_interval is None:
        return "not measured", f"beliefs not compared (no interval: {numbers})"
    if mine.likelihood_interval[0] > theirs.likelihood_interval[1]:
        return "more", f"differs in beliefs from prompt-only, holding more of them ({numbers})"
    if mine.likelihood_interval[1] < theirs.likelihood_interval[0]:
        return "fewer", f"differs in beliefs from prompt-only, holding fewer of them ({numbers})"
    return "no difference", (
        f"no measurable difference in beliefs from prompt-only ({numbers}: the intervals overlap)"
    )


def _fidelity(report: EvalReport, name: str) -> tuple[ConflictFidelity | None, str]:
    """The variant's conflict fidelity when it was measured, else None and why not."""
    conflicts = report.metrics[name].conflicts
    if conflicts is not None and conflicts.likelihood is not None:
        return conflicts, ""
    if not report.conflict_ids:
        return None, "no conflicts were asked: add data/conflicts.yaml"
    if conflicts is None:
        return None, "its conflict answers were not scored; see Notes"
    return None, "no conflict had both answers scored"


def _fluency(metrics: VariantMetrics, guards: Guards | None) -> tuple[bool | None, str]:
    fluency = metrics.fluency
    if fluency is None or fluency.nll_under_base is None:
        return None, "fluency not measured (the base model did not score the answers)"
    nll = f"NLL {format_cell(fluency.nll_under_base, fluency.nll_interval)}"
    if guards is None:
        return None, f"fluency not checked against a guard ({nll})"
    if fluency.nll_under_base <= guards.max_fluency_nll:
        return True, f"within the fluency guard ({nll} <= {guards.max_fluency_nll:.2f})"
    return False, f"outside the fluency guard ({nll} > {guards.max_fluency_nll:.2f})"


def _copying(metrics: VariantMetrics, guards: Guards | None) -> tuple[bool | None, str]:
    copies = metrics.memorisation
    if copies is None:
        return None, "copying not measured"
    rate = f"copy rate {format_cell(copies.copy_rate, copies.copy_rate_interval)}"
    if guards is None:
        return None, f"copying not checked against a limit ({rate})"
    if copies.copy_rate <= guards.max_copy_rate:
        return False, f"not by copying ({rate} <= {guards.max_copy_rate:.2f})"
    return True, f"by copying its training text ({rate} > {guards.max_copy_rate:.2f})"


def heldout_sentence(report: EvalReport) -> str:
    """What the classifiers were fitted on, and that every prompt is held out (with counts)."""
    fitted = report.classifier_texts or "the personas' train and validation texts (never test)"
    conflicts = {CONFLICT_PREFIX + c for c in report.conflict_ids}
    topics = [t for t in report.heldout_topics if t not in conflicts]
    asked = len(report.conflict_ids)
    return (
        f"The attribution classifiers were fitted on {fitted}. Every prompt is held out: "
        f"{len(topics)} test topic"
        f"{'s' * (len(topics) != 1)} never trained on or synthesized, and {asked} conflict "
        f"question{'s' * (asked != 1)} (test data only), {len(topics) + asked} prompts in all."
    )
