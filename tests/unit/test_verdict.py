"""The verdict per variant against the prompt-only baseline, and the headline table."""

from __future__ import annotations

from foundry.config import FoundryConfig
from foundry.evaluation.schema import (
    ConflictFidelity,
    EvalReport,
    Fluency,
    Memorisation,
    VariantMetrics,
)
from foundry.evaluation.verdict import Guards, headline_rows, heldout_sentence, verdicts

GUARDS = Guards(max_fluency_nll=8.0, max_copy_rate=0.10)


def _variant(
    fidelity: float | None = 0.5,
    interval: list[float] | None = None,
    nll: float | None = 3.0,
    copy_rate: float | None = 0.0,
) -> VariantMetrics:
    conflicts = ConflictFidelity(
        conflicts=20, answers=40, likelihood=fidelity, likelihood_interval=interval,
        answer_cosine=0.4, answer_cosine_interval=[0.3, 0.5],
    )  # fmt: skip
    memorisation = None
    if copy_rate is not None:
        memorisation = Memorisation(
            run_words=12, copy_rate=copy_rate, copied=int(copy_rate * 40),
            copy_rate_interval=[max(copy_rate - 0.05, 0.0), copy_rate + 0.05], max_run=3,
            mean_ngram_share=0.01,
        )  # fmt: skip
    return VariantMetrics(
        personas=["a", "b"],
        answers=40,
        fluency=Fluency(
            nll_under_base=nll,
            nll_interval=[2.5, 3.5] if nll else None,
            distinct_1=0.5,
            distinct_2=0.8,
            mean_words=60.0,
        ),  # fmt: skip
        memorisation=memorisation,
        conflicts=conflicts if fidelity is not None else None,
    )


def _report(**variants: VariantMetrics) -> EvalReport:
    return EvalReport(
        created_at="now", base_model="tiny", personas=["a", "b"], variants=list(variants),
        heldout_topics=["t1", "t2", "t3", "conflict-x", "conflict-y"],
        conflict_ids=["x", "y"], metrics=variants,
    )  # fmt: skip


def _verdict(report: EvalReport, name: str, guards: Guards | None = GUARDS):
    return next(v for v in verdicts(report, guards) if v.variant == name)


def test_a_variant_whose_interval_clears_the_baselines_differs_in_beliefs():
    report = _report(prompt=_variant(0.52, [0.40, 0.63]), dpo=_variant(0.71, [0.64, 0.81]))
    verdict = _verdict(report, "dpo")
    assert verdict.beliefs == "more" and verdict.is_fluent and verdict.is_copying is False
    assert verdict.text == (
        "dpo: differs in beliefs from prompt-only, holding more of them (conflict fidelity "
        "0.71 [0.64, 0.81] vs 0.52 [0.40, 0.63]); within the fluency guard (NLL 3.00 "
        "[2.50, 3.50] <= 8.00); not by copying (copy rate 0.00 [0.00, 0.05] <= 0.10)."
    )
    assert _verdict(report, "prompt").beliefs == "baseline"


def test_overlapping_intervals_are_no_measurable_difference_however_far_the_points():
    report = _report(prompt=_variant(0.52, [0.40, 0.63]), dpo=_variant(0.71, [0.60, 0.81]))
    verdict = _verdict(report, "dpo")
    assert verdict.beliefs == "no difference"
    assert "no measurable difference in beliefs from prompt-only" in verdict.text
    assert "the intervals overlap" in verdict.text


def test_a_variant_below_the_baseline_holds_fewer_beliefs():
    report = _report(prompt=_variant(0.70, [0.60, 0.80]), sft=_variant(0.40, [0.30, 0.55]))
    verdict = _verdict(report, "sft")
    assert verdict.beliefs == "fewer" and "holding fewer of them" in verdict.text


def test_a_copying_variant_is_called_out_even_when_it_differs():
    report = _report(
        prompt=_variant(0.52, [0.40, 0.63]), dpo=_variant(0.9, [0.8, 1.0], copy_rate=0.25)
    )
    verdict = _verdict(report, "dpo")
    assert verdict.beliefs == "more" and verdict.is_copying is True
    assert verdict.text.endswith(
        "but by copying its training text (copy rate 0.25 [0.20, 0.30] > 0.10)."
    )


def test_fluency_beyond_the_guard_is_outside_it():
    report = _report(prompt=_variant(0.5, [0.4, 0.6]), sft=_variant(0.5, [0.4, 0.6], nll=9.5))
    verdict = _verdict(report, "sft")
    assert verdict.is_fluent is False
    assert "outside the fluency guard (NLL 9.50 [2.50, 3.50] > 8.00)" in verdict.text


def test_missing_metrics_say_not_measured_and_why():
    report = _report(prompt=_variant(0.5, [0.4, 0.6]), sft=_variant(None, nll=None, copy_rate=None))
    verdict = _verdict(report, "sft")
    assert (verdict.beliefs, verdict.is_fluent, verdict.is_copying) == ("not measured", None, None)
    assert verdict.text == (
        "sft: beliefs not measured (its conflict answers were not scored; see Notes); fluency "
        "not measured (the base model did not score the answers); copying not measured."
    )
    no_conflicts = _report(prompt=_variant(None), dpo=_variant(None))
    no_conflicts.conflict_ids = []
    assert "add data/conflicts.yaml" in _verdict(no_conflicts, "dpo").text


def test_without_a_baseline_or_guards_nothing_is_claimed():
    alone = _verdict(_report(dpo=_variant(0.9, [0.8, 1.0])), "dpo", guards=None)
    assert alone.beliefs == "not measured" and alone.is_fluent is None
    assert "the prompt-only variant `prompt` was not evaluated" in alone.text
    assert "fluency not checked against a guard" in alone.text
    pointless = _report(prompt=_variant(0.5, None), dpo=_variant(0.9, [0.8, 1.0]))
    assert "beliefs not compared (no interval" in _verdict(pointless, "dpo").text


def test_the_guards_are_the_promotion_gates():
    config = FoundryConfig.model_validate(
        {"registry": {"promotion": {"max_fluency_nll": 6.5, "max_copy_rate": 0.2}}}
    )
    assert Guards.from_config(config) == Guards(6.5, 0.2)


def test_the_headline_table_shows_every_metric_with_its_interval():
    report = _report(prompt=_variant(0.52, [0.40, 0.63]), dpo=_variant(None, nll=None))
    prompt, dpo = headline_rows(report)
    assert list(prompt) == [
        "variant", "conflict fidelity", "stance", "belief dominance", "content attribution",
        "style attribution", "copy rate", "fluency (NLL)", "answer divergence (A-B cosine)",
    ]  # fmt: skip
    assert prompt["conflict fidelity"] == "0.52 [0.40, 0.63]"
    assert prompt["fluency (NLL)"] == "3.00 [2.50, 3.50]"
    assert prompt["answer divergence (A-B cosine)"] == "0.40 [0.30, 0.50]"
    assert (dpo["conflict fidelity"], dpo["fluency (NLL)"], dpo["stance"]) == ("-", "-", "-")


def test_the_heldout_sentence_counts_topics_and_conflict_questions_apart():
    report = _report(prompt=_variant())
    report.classifier_texts = "train + validation texts (a 30, b 28)"
    assert heldout_sentence(report) == (
        "The attribution classifiers were fitted on train + validation texts (a 30, b 28). "
        "Every prompt is held out: 3 test topics never trained on or synthesized, and 2 "
        "conflict questions (test data only), 5 prompts in all."
    )
