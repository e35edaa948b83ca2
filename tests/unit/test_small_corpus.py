"""No persona is lost to a small or look-alike corpus: per-persona bars, the floor, corpus pairs.

Three fictional analysts written here: Ada Voss (a small corpus on chips whose newer writing reads
like Ben's), Ben Okoro (a larger corpus on the same chips in similar prose) and Cora Lind (power
grids and farms, far from both).
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import yaml

from foundry.config import Settings, load_config
from foundry.data.attribution import fit_attribution
from foundry.data.schemas import CorpusItem, DebateTurn
from foundry.errors import ConfigError
from foundry.synthesis.attribution_bars import keep_floor, measure_bars
from foundry.synthesis.config import FilterConfig
from foundry.synthesis.jobs import SynthesisError
from foundry.synthesis.pair_building import build_pairs
from foundry.synthesis.turn_filters import TurnCandidate, filter_turns
from foundry.synthesis.turn_review import review_turns

ADA, BEN, CORA = "ada-voss", "ben-okoro", "cora-lind"
ADA_TRAIN = [
    "Wafer starts tell me more than any keynote. When the fab cadence slows, the yield curve "
    "flattens and the lithography queue quietly empties.",
    "I watch the yield curve on the newest node the way a farmer watches rain. Wafer starts rose "
    "again this quarter, and the fab cadence held.",
    "The lithography queue is the honest ledger of this industry. Wafer starts follow it with a "
    "lag of two quarters, and the yield curve follows them.",
    "A fab that misses its cadence loses a node, not a quarter. The yield curve on the new "
    "process decides whether wafer starts can climb at all.",
    "Read the lithography queue, then the wafer starts, then the yield curve. Everything else "
    "about the fab is commentary.",
    "Fab cadence is a promise made in concrete. Wafer starts and the lithography queue show "
    "whether the promise is being kept.",
]
# Ada's newer essays: the same chips, now in Ben's vocabulary.
ADA_VALID = [
    "Hyperscaler orders for accelerators keep climbing, and packaging capacity is the real limit; "
    "memory bandwidth decides which chips ship this year.",
    "Packaging capacity, not demand, sets the pace: hyperscaler orders exceed what advanced "
    "packaging lines can finish, and memory bandwidth stays scarce.",
    "The accelerator backlog is a packaging story. Hyperscaler orders are booked through next "
    "year while memory bandwidth and substrate supply lag.",
    "Wafer starts matter, but hyperscaler orders and packaging capacity now decide the margin, "
    "and memory bandwidth caps what each accelerator can do.",
]
BEN_TRAIN = [
    "Hyperscaler orders are the only demand signal I trust. Packaging capacity decides how many "
    "accelerators ship, and memory bandwidth decides how useful they are.",
    "Memory bandwidth is the bottleneck nobody prices. Hyperscaler orders double while packaging "
    "capacity grows by a third.",
    "Advanced packaging capacity is sold out through next year; hyperscaler orders for "
    "accelerators keep arriving anyway.",
    "Accelerator margins follow packaging capacity. When hyperscaler orders outrun the packaging "
    "lines, the accelerator vendor sets the price.",
    "Watch memory bandwidth per accelerator. Hyperscaler orders shift to whichever design moves "
    "the most bytes per watt through its packaging.",
    "Substrate supply and packaging capacity are the quiet constraints; hyperscaler orders are "
    "the loud ones, and memory bandwidth is the expensive one.",
    "Every accelerator roadmap is a memory bandwidth roadmap. Hyperscaler orders reward the "
    "vendor with the most packaging capacity booked.",
    "Packaging capacity expansions take two years. Hyperscaler orders placed today meet "
    "packaging lines that were planned before the boom.",
    "Hyperscaler orders cluster around the accelerators with the highest memory bandwidth, and "
    "packaging capacity rations the rest.",
    "The accelerator shortage is a packaging capacity shortage wearing a demand costume; "
    "hyperscaler orders just reveal it.",
]
BEN_VALID = [
    "Hyperscaler orders slowed for a month and packaging capacity finally caught up; memory "
    "bandwidth is still the constraint on accelerators.",
    "More packaging capacity comes online next spring, and hyperscaler orders for the next "
    "accelerator generation are already booked.",
    "Memory bandwidth per accelerator doubled, so hyperscaler orders moved to the new parts and "
    "packaging capacity followed.",
]
CORA_TRAIN = [
    "The grid interconnection queue in the valley is seven years long; the farms waiting in it "
    "grow wheat meanwhile.",
    "Transmission lines are the orchard fences of the energy transition: slow to build, and "
    "everything behind them depends on them.",
    "A substation upgrade at the county line doubled what the dairy farms can sell back to the "
    "grid during harvest.",
    "Rural cooperatives own the distribution lines, and their boards meet in the grange hall to "
    "decide every transformer.",
    "Irrigation pumps draw most of the valley's summer load, so the grid operator schedules "
    "maintenance for the rainy months.",
    "The interconnection queue rewards patience and lawyers; the wheat farmers have the first "
    "and hire the second.",
    "Solar on barn roofs feeds the feeder line at noon, when the irrigation pumps need it most.",
    "Every new transmission corridor crosses someone's orchard, and the hearings last longer "
    "than the construction.",
]
CORA_VALID = [
    "The grid operator finally cleared the interconnection queue for the valley farms, and the "
    "cooperative added a transformer by the orchard.",
    "Dairy farms on the feeder line sell power at harvest, and the transmission hearing moved "
    "to the grange hall.",
    "Irrigation load peaks in August, so the rural cooperative plans substation work for the "
    "rainy season.",
]
TRAIN = {ADA: ADA_TRAIN, BEN: BEN_TRAIN, CORA: CORA_TRAIN}
VALIDATION = {ADA: ADA_VALID, BEN: BEN_VALID, CORA: CORA_VALID}
# Synthetic turns by Ada in the voice of her newer essays.
ADA_TURN = (
    "Look past the keynote slides: hyperscaler orders are booked, yet packaging capacity and "
    "memory bandwidth decide how many accelerators actually leave the line this year, and that "
    "is where the margin sits."
)
ADA_TURNS = [
    ADA_TURN,
    "Margins in accelerators belong to whoever owns the scarce step. Today that step is "
    "advanced packaging, and memory bandwidth is the price of admission for each design.",
    "Count the substrates before you count the orders: hyperscaler demand is real, but every "
    "accelerator still waits its turn on a packaging line booked two years ahead.",
]
# Synthetic turns by Ada that read as Cora (grids and farms), none repeating another.
OFF_VOICE = [
    "The valley farms wait in the interconnection queue while the rural cooperative argues about "
    "a transformer, and the irrigation pumps keep drawing power all summer long.",
    "Ask the grange hall, not the utility: the cooperative board decides which orchard gets the "
    "next transmission pole and which dairy waits another winter for its upgrade.",
    "Harvest is when the feeder line earns its keep, because barn roofs export solar at noon and "
    "the wheat dryers pull it straight back before the sun sets.",
    "A substation is a slow crop. The county planted one a decade ago, and only now do the "
    "farmers on the ridge see cheaper irrigation bills in August.",
    "Transmission hearings outlast the wheat seasons they delay; every corridor crosses a fence, "
    "and every fence has a family with a lawyer and a long memory.",
    "Rural load is seasonal and honest: pumps in summer, dryers in autumn, heaters in winter, and "
    "the cooperative schedules its crews around all three without fail.",
]


def fit_attribution_on_train():
    """The classifier `review_turns` fits: the three train splits, seed 0."""
    texts = [(text, slug) for slug, rows in TRAIN.items() for text in rows]
    return fit_attribution([t for t, _ in texts], [s for _, s in texts], seed=0)


@pytest.fixture(scope="module")
def classifier():
    return fit_attribution_on_train()


def test_a_persona_whose_real_texts_read_as_its_neighbour_gets_the_bar_they_reach(classifier):
    bars = measure_bars(classifier, VALIDATION, FilterConfig())

    ada = bars[ADA]
    own = sorted((row[ADA] for row in classifier.probabilities(ADA_VALID)), reverse=True)
    assert ada.real_texts == 4 and ada.neighbour == BEN
    assert ada.real_own_share <= 0.25  # at most one of her own essays reads as hers
    assert ada.configured == 0.3 and ada.is_lowered
    assert ada.bar == ada.real_reach == own[2] < 0.3  # three in four of her texts reach it
    assert sum(p >= ada.bar for p in own) == 3
    # Personas whose real texts read as themselves keep the configured bar.
    assert (bars[BEN].bar, bars[CORA].bar) == (0.3, 0.3)
    assert bars[BEN].real_own_share == 1.0 and not bars[BEN].is_lowered
    note = ada.describe(FilterConfig())
    assert re.fullmatch(
        rf"attribution bar {ada.bar:.2f}, lowered from 0\.30 \(`synthesis\.filters\."
        r"min_attribution`\): [01]/4 of its real validation texts read as itself, the others "
        rf"mostly as {BEN}, and 75% of them reach {ada.bar:.2f} "
        r"\(`synthesis\.filters\.real_pass_share`\)",
        note,
    )


def test_the_bar_never_rises_above_min_attribution_and_needs_validation_texts(classifier):
    bars = measure_bars(classifier, {BEN: BEN_VALID, ADA: []}, FilterConfig(min_attribution=0.1))
    assert bars[BEN].bar == 0.1 < bars[BEN].real_reach
    assert (bars[ADA].bar, bars[ADA].real_texts) == (0.1, 0)
    assert "no real validation texts" in bars[ADA].describe(FilterConfig())


def test_a_turn_in_the_personas_own_real_voice_passes_its_bar_but_not_the_fixed_one(classifier):
    bar = measure_bars(classifier, VALIDATION, FilterConfig())[ADA].bar
    turn = [TurnCandidate(key="t1", persona=ADA, text=ADA_TURN)]
    (own,) = classifier.probabilities([ADA_TURN])

    fixed = filter_turns(turn, TRAIN, FilterConfig(), classifier=classifier)["t1"]
    per_persona = filter_turns(turn, TRAIN, FilterConfig(), classifier=classifier, bars={ADA: bar})

    assert bar <= own[ADA] < 0.3
    assert fixed == [f"attribution: {own[ADA]:.2f} < 0.30 for {ADA} (most likely {BEN})"]
    assert per_persona == {"t1": []}


class _FixedClassifier:
    """Stands in for the attribution classifier: each text's own-persona probability is given."""

    def __init__(self, own: dict[str, float], persona: str, other: str) -> None:
        self.own, self.persona, self.other = own, persona, other

    def probabilities(self, texts):
        return [{self.persona: self.own[t], self.other: 1 - self.own[t]} for t in texts]


def _distinct(n: int) -> str:
    """A 24-word text sharing no 3-gram with another `_distinct(m)`."""
    return " ".join(f"w{n}x{i}" for i in range(24))


def test_the_floor_keeps_the_best_attribution_rejects_and_nothing_else():
    texts = {f"t{i}": _distinct(i) for i in range(7)}
    own = dict(zip(texts.values(), [0.10, 0.40, 0.20, 0.35, 0.05, 0.30, 0.45], strict=True))
    texts["t7"] = texts["t1"] + " again"  # a near duplicate of the best reject
    own[texts["t7"]] = 0.44
    texts["t8"] = "too short to keep"  # the best score of all, but a bad length too
    own[texts["t8"]] = 0.49
    candidates = [TurnCandidate(key=k, persona=ADA, text=t) for k, t in texts.items()]
    fake = _FixedClassifier(own, ADA, BEN)
    settings = FilterConfig(min_attribution=0.5, min_kept_turns=3)

    reasons = filter_turns(candidates, {BEN: ["unrelated text"]}, settings, classifier=fake)
    floor = keep_floor(candidates, reasons, fake, settings)

    assert all(reasons[k] for k in texts)  # every turn was rejected
    assert reasons["t8"] == [
        "too-short: 4 words < 20",
        f"attribution: 0.49 < 0.50 for {ADA} (most likely {BEN})",
    ]
    # Best first: t6 (0.45), t7 (0.44), then t1 (0.40) is passed over as a near copy of t7, and
    # t3 (0.35) completes the floor; t8 scores best but is too short.
    assert floor[ADA].kept == ["t6", "t7", "t3"]
    assert floor[ADA].attribution_rejected == 9 and floor[ADA].likely == BEN
    assert keep_floor(candidates, reasons, fake, FilterConfig(min_kept_turns=0))[ADA].kept == []
    assert keep_floor(candidates, reasons, None, settings) == {}


def test_the_floor_only_tops_up_what_the_filters_kept():
    texts = {f"t{i}": _distinct(i) for i in range(4)}
    own = dict(zip(texts.values(), [0.9, 0.2, 0.3, 0.1], strict=True))
    candidates = [TurnCandidate(key=k, persona=ADA, text=t) for k, t in texts.items()]
    fake = _FixedClassifier(own, ADA, BEN)
    settings = FilterConfig(min_attribution=0.5, min_kept_turns=2)
    reasons = filter_turns(candidates, {BEN: ["unrelated text"]}, settings, classifier=fake)
    assert [k for k in texts if not reasons[k]] == ["t0"]
    assert keep_floor(candidates, reasons, fake, settings)[ADA].kept == ["t2"]


def _turn(slug: str, n: int, text: str) -> DebateTurn:
    return DebateTurn(
        key=f"{slug}-{n:02d}", persona=slug, topic_id="chips", prompt="Who wins the chip race?",
        move="claim", text=text, provider="offline", model="composer", template="t:v1",
        prompt_hash="0" * 64,
    )  # fmt: skip


def _review_project(tmp_path, config_text: str):
    """A config in `tmp_path` and a validation summary of the three fictional personas."""
    (tmp_path / "foundry.yaml").write_text(config_text)
    config = load_config(tmp_path / "foundry.yaml")
    splits = {"train": TRAIN, "validation": VALIDATION}
    personas = [
        SimpleNamespace(
            slug=slug,
            items=[
                CorpusItem(id=f"{slug}-{split}-{i}", persona=slug, text=text, split=split)
                for split, corpora in splits.items()
                for i, text in enumerate(corpora[slug])
            ],
        )
        for slug in TRAIN
    ]
    return config, SimpleNamespace(personas=personas)


def test_review_holds_a_look_alike_persona_to_its_own_bar_and_records_it(tmp_path):
    config, summary = _review_project(tmp_path, "synthesis: {filters: {min_kept_turns: 0}}\n")
    turns = {ADA: [_turn(ADA, n, text) for n, text in enumerate(ADA_TURNS)]}

    review = review_turns(config, summary, turns)[ADA]

    own = [row[ADA] for row in fit_attribution_on_train().probabilities(ADA_TURNS)]
    assert min(own) < 0.3  # the fixed bar would reject at least one of them
    assert (review.kept, review.kept_by_floor, review.rejected) == (3, 0, {})
    bar = review.attribution_bar
    assert bar is not None and bar.persona == ADA and bar.neighbour == BEN
    assert bar.bar < min(own) and bar.configured == 0.3
    assert review.notes == [bar.describe(config.synthesis.filters)]
    assert review.notes[0].startswith(f"attribution bar {bar.bar:.2f}, lowered from 0.30")


def test_review_keeps_the_best_turns_up_to_the_floor_and_says_so(tmp_path):
    config, summary = _review_project(
        tmp_path, "synthesis: {filters: {min_kept_turns: 3, min_attribution: 0.5}}\n"
    )
    turns = {BEN: [_turn(BEN, n, text) for n, text in enumerate(OFF_VOICE)]}

    review = review_turns(config, summary, turns)[BEN]

    kept = (config.data_dir / "synthetic" / BEN / "turns.jsonl").read_text().splitlines()
    rejected = (config.data_dir / "synthetic" / BEN / "rejected.jsonl").read_text().splitlines()
    assert (review.kept, review.kept_by_floor, len(kept), len(rejected)) == (3, 3, 3, 3)
    assert review.rejected == {"attribution": 3}
    assert all(json.loads(r)["reasons"][0].startswith("attribution:") for r in rejected)
    # The three kept are the three Ben-most of the six.
    own = {
        t: row[BEN]
        for t, row in zip(
            OFF_VOICE, fit_attribution_on_train().probabilities(OFF_VOICE), strict=True
        )
    }
    assert {json.loads(line)["text"] for line in kept} == set(sorted(own, key=own.get)[3:])
    assert review.attribution_bar is not None and review.attribution_bar.bar == 0.5
    assert review.notes == [
        f"6 turns made, 6 rejected by attribution: most read as {CORA}; kept the best 3 by "
        "own-persona probability (`synthesis.filters.min_kept_turns` = 3)"
    ]


def test_review_says_when_the_floor_cannot_help(tmp_path):
    config, summary = _review_project(tmp_path, "synthesis: {filters: {min_words: 300}}\n")
    turns = {BEN: [_turn(BEN, n, text) for n, text in enumerate(OFF_VOICE[:3])]}

    review = review_turns(config, summary, turns)[BEN]

    assert (review.kept, review.kept_by_floor) == (0, 0)
    assert review.notes[-1].startswith(
        "only 0 of 3 turns kept, below `synthesis.filters.min_kept_turns` (8); the floor keeps "
        "only turns rejected by attribution alone, and the rest failed "
    )
    assert "too-short 3" in review.notes[-1]
    assert review.notes[-1].endswith("; `foundry pairs` will use corpus pairs for it")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("synthesis: {filters: {min_kept_turns: -1}}", "synthesis.filters.min_kept_turns"),
        ("synthesis: {filters: {real_pass_share: 0}}", "synthesis.filters.real_pass_share"),
        ("synthesis: {filters: {real_pass_share: 1.5}}", "synthesis.filters.real_pass_share"),
    ],
)
def test_floor_and_share_settings_are_validated(tmp_path, text, key):
    (tmp_path / "foundry.yaml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"`{key}`")):
        load_config(tmp_path / "foundry.yaml")


# ---- pairs: corpus pairs when synthesis ran but kept nothing, an error when it never ran


def _write_persona(root, slug: str, name: str, texts: list[str]) -> None:
    folder = root / "data" / "personas" / slug
    (folder / "corpus").mkdir(parents=True)
    (folder / "contract.yaml").write_text(yaml.safe_dump({"name": name}))
    rows = [
        {"id": f"{slug}-{i}", "text": text, "date": f"2024-{1 + i % 12:02d}-{1 + i:02d}"}
        for i, text in enumerate(texts)
    ]
    (folder / "corpus" / "posts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "foundry.yaml").write_text("synthesis: {pairs: {max_pairs: 50}}\n")
    _write_persona(root, ADA, "Ada Voss", ADA_TRAIN + ADA_VALID)
    _write_persona(root, BEN, "Ben Okoro", BEN_TRAIN + BEN_VALID)
    _write_persona(root, CORA, "Cora Lind", CORA_TRAIN + CORA_VALID)
    topics = [
        {"id": "chip-margins", "prompt": "Who captures the margin in accelerator chips?"},
        {"id": "packaging", "prompt": "Is advanced packaging the real bottleneck for chips?"},
        {"id": "grid-queue", "prompt": "Should rural grids fast-track farm interconnections?"},
        {"id": "wafer-starts", "prompt": "Do wafer starts predict the chip cycle?"},
    ]
    (root / "data" / "topics.yaml").write_text(yaml.safe_dump({"topics": topics}))
    return load_config(root / "foundry.yaml")


def _no_base():
    raise AssertionError("corpus pairs must not need the base model")


def test_pairs_fall_back_to_corpus_pairs_when_synthesis_kept_no_turns(project, caplog):
    folder = project.data_dir / "synthetic" / ADA
    folder.mkdir(parents=True)
    (folder / "turns.jsonl").write_text("")  # synthesis ran and every turn was rejected

    with caplog.at_level("WARNING", logger="foundry"):
        summary = build_pairs(project, Settings(anthropic_api_key=None), load_base=_no_base)

    assert list(summary.personas) == [ADA]  # the only persona synthesis ran for
    warning = summary.warnings[ADA]
    assert warning.startswith(f"persona {ADA}: synthesis kept no turns (")
    assert "corpus pairs instead" in warning and "`synthesis.filters.min_kept_turns`" in warning
    assert warning in caplog.text
    pairs = [json.loads(line) for line in (folder / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == sum(v for k, v in summary.personas[ADA].items() if k != "validation")
    assert pairs and {p["strategy"] for p in pairs} == {"cross_persona"}
    assert {p["chosen"] for p in pairs} <= set(ADA_TRAIN + ADA_VALID)
    assert {p["provenance"]["rejected_persona"] for p in pairs} <= {BEN, CORA}


def test_pairs_for_a_persona_never_synthesized_say_to_run_synth(project):
    never = rf"{BEN} has no synthetic turns \(.* synthesis has not run for it\); run `foundry synth"
    with pytest.raises(SynthesisError, match=never):
        build_pairs(project, Settings(anthropic_api_key=None), personas=[BEN], load_base=_no_base)
    assert not (project.data_dir / "synthetic" / BEN / "pairs.jsonl").exists()
