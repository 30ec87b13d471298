"""Tests for honed.data.leakage: duplicate queries, shared positives, distribution shift, overfitting."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from honed.data.leakage import (
    _jaccard,
    _shingles,
    find_duplicates,
    normalize_text,
    shared_positives,
)
from honed.data.shift import distribution_shift
from honed.evaluation.overfitting import overfitting_warning

# ../shared beside the checkout (as on the dev machines and in CI)
SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"

LONG = (
    "Daily vitamin D supplementation reduces the risk of hip fractures in older adults "
    "living in care homes."
)
TRAIN = {
    "t1": "What is the effect of vitamin D on bone density?",
    "t2": "Does metformin lower HbA1c in type 2 diabetes",
    "t3": LONG,
    "t4": "How does sleep deprivation affect memory consolidation?",
    "t5": "Ｈｏｗ do statins lower LDL cholesterol…",  # full-width letters, ellipsis
}
TEST = {
    "s1": "  what is THE effect of vitamin d on   bone density ",
    "s2": "¿does metformin lower hba1c in type 2 diabetes?!",
    "s3": LONG.replace("reduces", "lowers"),  # one word changed
    "s4": "Malaria transmission by Anopheles mosquitoes in sub-Saharan Africa",
    "s5": "how do statins lower ldl cholesterol",
    "s6": "Which genes control circadian rhythm in fruit flies?",
}


def test_normalize_text() -> None:
    assert normalize_text("  What  is\tVitamin D?! ") == "what is vitamin d"
    assert normalize_text("«Straße» — ok.") == "strasse» — ok"  # casefold; only P* is trimmed
    assert normalize_text("ＤＮＡ repair…") == "dna repair"  # NFKC
    assert normalize_text("p < 0.05 (n=3)") == "p < 0.05 (n=3"
    assert normalize_text(" ?! ") == ""


def test_exact_and_near_duplicates() -> None:
    report = find_duplicates(TRAIN, TEST)
    assert [(p.qid_a, p.qid_b) for p in report.exact] == [("t1", "s1"), ("t2", "s2"), ("t5", "s5")]
    assert all(p.kind == "exact" and p.char_similarity == 1.0 for p in report.exact)
    assert report.exact[0].text_b == TEST["s1"]  # original texts are kept
    [near] = report.near
    assert (near.qid_a, near.qid_b, near.kind, near.cosine) == ("t3", "s3", "near", None)
    assert 0.8 <= near.char_similarity < 1
    assert report.leaked_qids == frozenset({"t1", "t2", "t3", "t5"})
    assert (report.char_threshold, report.cosine_threshold) == (0.8, 0.95)


def test_unrelated_queries_are_not_found() -> None:
    report = find_duplicates(
        {k: TRAIN[k] for k in ("t3", "t4")}, {k: TEST[k] for k in ("s4", "s6")}
    )
    assert report.exact == () and report.near == () and report.leaked_qids == frozenset()
    # A short query with one changed word stays below 0.8: that is what the cosine path is for.
    short = find_duplicates(
        {"a": "effect of statins on stroke"}, {"b": "impact of statins on stroke"}
    )
    assert short.near == ()
    assert find_duplicates({}, TEST).exact == ()


def test_char_near_matches_brute_force() -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(60)]
    a = {f"a{i}": " ".join(rng.choices(words, k=8)) for i in range(80)}
    b = {f"b{i}": " ".join(rng.choices(words, k=8)) for i in range(40)}
    b |= {f"m{i}": a[f"a{i}"].replace(a[f"a{i}"].split()[0], "zz", 1) for i in range(30)}
    for threshold in (0.3, 0.6, 0.8):
        found = {(p.qid_a, p.qid_b) for p in find_duplicates(a, b, char_threshold=threshold).near}
        shingles_a = {q: _shingles(normalize_text(t)) for q, t in a.items()}
        shingles_b = {q: _shingles(normalize_text(t)) for q, t in b.items()}
        brute = {
            (x, y) for x, sx in shingles_a.items() for y, sy in shingles_b.items()
            if _jaccard(sx, sy) >= threshold and sx != sy
        }  # fmt: skip
        assert found == brute and found


def _unit(rows: list[list[float]]) -> np.ndarray:
    array = np.array(rows, dtype=np.float64)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_cosine_path() -> None:
    a = {"t1": "heart attack risk of aspirin", "t2": "malaria vaccine trial"}
    b = {"s1": "does aspirin prevent myocardial infarction", "s2": "sleep and memory"}
    emb_a = _unit([[1, 0, 0], [0, 1, 0]])  # sorted-qid order: t1, t2
    emb_b = _unit([[0.99, 0.1, 0], [0, 0.2, 1]])  # s1 ~ t1 (cosine 0.995), s2 unrelated
    report = find_duplicates(a, b, emb_a, emb_b)
    [near] = report.near
    assert (near.qid_a, near.qid_b) == ("t1", "s1")
    assert near.cosine == pytest.approx(0.99 / np.hypot(0.99, 0.1))
    assert near.char_similarity < 0.3
    assert find_duplicates(a, b, emb_a, emb_b, cosine_threshold=0.999).near == ()
    # Rows are normalised before the dot product, and every pair reports its cosine.
    exact = find_duplicates(
        {"t1": "x y z"}, {"s1": "X Y Z"}, np.array([[3.0, 4.0]]), _unit([[0, 1]])
    )
    assert exact.exact[0].cosine == pytest.approx(0.8)


def test_find_duplicates_is_fast_on_1k_by_1k() -> None:
    rng = random.Random(1)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9)))
             for _ in range(3000)]  # fmt: skip
    a = {f"a{i}": " ".join(rng.choices(words, k=rng.randint(4, 12))) for i in range(1000)}
    b = {f"b{i}": " ".join(rng.choices(words, k=rng.randint(4, 12))) for i in range(1000)}
    emb = np.random.default_rng(1).normal(size=(2000, 64))
    start = time.perf_counter()
    find_duplicates(a, b, emb[:1000], emb[1000:])
    assert time.perf_counter() - start < 2.0


def test_find_duplicates_errors() -> None:
    emb = _unit([[1, 0]] * 5)
    with pytest.raises(ValueError, match=r"char_threshold must be a number in \(0, 1\], got 0"):
        find_duplicates(TRAIN, TEST, char_threshold=0)
    with pytest.raises(ValueError, match=r"cosine_threshold must be a number in \(0, 1\], got 1.5"):
        find_duplicates(TRAIN, TEST, cosine_threshold=1.5)
    with pytest.raises(ValueError, match=r"emb_b is None but the other embeddings were given"):
        find_duplicates(TRAIN, TEST, emb_a=emb)
    with pytest.raises(
        ValueError, match=r"emb_b must be a 2-D array with one row per query \(6, dim\)"
    ):
        find_duplicates(TRAIN, TEST, emb, emb)
    with pytest.raises(ValueError, match=r"emb_a contains NaN or infinite values"):
        find_duplicates({"t1": "x"}, {"s1": "y"}, np.array([[np.nan, 1.0]]), emb[:1])
    with pytest.raises(ValueError, match=r"emb_b row 0 is all zeros"):
        find_duplicates({"t1": "x"}, {"s1": "y"}, emb[:1], np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"different widths \(2 vs 3\)"):
        find_duplicates({"t1": "x"}, {"s1": "y"}, emb[:1], _unit([[1, 0, 0]]))


def test_shared_positives() -> None:
    train = {"t1": {"d1": 1, "d2": 0}, "t2": {"d3": 2}, "t3": {"d9": 0}}
    test = {
        "s1": {"d1": 1},  # a training positive
        "s2": {"d2": 1, "d4": 1},  # d2 was only judged non-relevant in training
        "s3": {"d3": 1, "d5": 1},  # one of two is a training positive
        "s4": {"d1": 0},  # no positive: not a test query
        "s5": {"d5": 1},
    }
    assert shared_positives(train, test) == {
        "test_queries": 4,
        "test_queries_with_a_training_positive": 2,
        "test_positive_docs": 5,  # d1, d2, d3, d4, d5
        "test_positive_docs_seen_in_training": 2,  # d1, d3
    }
    assert shared_positives({}, test)["test_positive_docs_seen_in_training"] == 0


TOPICS = ["vitamin d", "statins", "insulin", "malaria", "sleep", "aspirin", "obesity", "smoking"]
OUTCOMES = ["bone density", "heart disease", "memory", "blood pressure", "mortality", "fatigue"]


def _templated() -> dict[str, str]:
    """Short templated questions: the training population."""
    questions = [f"what is the effect of {t} on {o}?" for t in TOPICS for o in OUTCOMES]
    return {f"q{i:02d}": text for i, text in enumerate(questions)}


CLAIMS = [
    "Randomised controlled trials in elderly populations demonstrate that cholecalciferol "
    "supplementation substantially decreases osteoporotic fracture incidence over five years.",
    "Chronic intermittent hypoxia during nocturnal apnoea episodes accelerates hippocampal "
    "neurodegeneration and impairs declarative consolidation in middle-aged patients.",
    "Plasmodium falciparum parasites harbouring kelch13 mutations exhibit delayed clearance "
    "following artemisinin monotherapy across Southeast Asian provinces.",
    "Genome-wide association cohorts identified pleiotropic adiposity loci that modulate "
    "hypothalamic appetite regulation independently from physical exercise habits.",
]


def test_shift_between_populations_warns() -> None:
    train = _templated()
    test = {f"c{i}": text for i, text in enumerate(CLAIMS)}
    rng = np.random.default_rng(0)
    emb_train = np.eye(16)[0] + 0.1 * rng.normal(size=(len(train), 16))
    emb_test = np.eye(16)[1] + 0.1 * rng.normal(size=(len(test), 16))
    report = distribution_shift(train, test, emb_train, emb_test)
    assert report.train_mean_words < 10 < 15 < report.test_mean_words
    assert report.length_ratio > 2
    assert report.vocabulary_overlap < 0.5
    assert report.vocabulary_expected is not None and report.vocabulary_matched is not None
    assert report.vocabulary_expected - report.vocabulary_matched > 0.5
    assert report.train_template_share == 1.0 and report.test_template_share == 0.0
    assert report.centroid_cosine is not None and report.centroid_cosine < 0.8
    assert len(report.warnings) == 4
    assert "ratio" in report.warnings[0] and "outside [0.5, 2]" in report.warnings[0]
    assert "of test query words occur in train queries vs" in report.warnings[1]
    assert 'open with a repeated first 3 words (train: "what is the"' in report.warnings[2]
    assert "cosine" in report.warnings[3]


def test_same_population_split_does_not_warn() -> None:
    queries = _templated()
    qids = sorted(queries)
    random.Random(0).shuffle(qids)
    train = {q: queries[q] for q in qids[:36]}
    test = {q: queries[q] for q in qids[36:]}
    rng = np.random.default_rng(0)
    emb = np.eye(16)[0] + 0.2 * rng.normal(size=(len(queries), 16))
    report = distribution_shift(train, test, emb[:36], emb[36:])
    assert report.warnings == ()
    assert 0.9 < report.length_ratio < 1.1 and report.vocabulary_overlap > 0.9
    assert report.centroid_cosine is not None and report.centroid_cosine > 0.9
    assert distribution_shift(train, test).centroid_cosine is None


def test_distribution_shift_errors() -> None:
    with pytest.raises(ValueError, match=r"test has no words in its 0 queries"):
        distribution_shift({"t": "a question"}, {})
    with pytest.raises(ValueError, match=r"train has no words in its 1 queries"):
        distribution_shift({"t": "?!"}, {"s": "a question"})
    with pytest.raises(ValueError, match=r"emb_train is None but the other embeddings were given"):
        distribution_shift({"t": "a"}, {"s": "b"}, emb_test=np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"embedding centroid has zero norm"):
        distribution_shift(
            {"t": "a", "u": "b"}, {"s": "c"}, _unit([[1, 0], [-1, 0]]), np.ones((1, 2))
        )


def _losses(until: float, start: float = 1.0, step: float = 0.25) -> list[dict[str, float]]:
    """A steadily falling training loss logged every ``step`` epochs up to ``until``."""
    epochs = np.arange(step, until + 1e-9, step)
    return [{"epoch": float(e), "loss": start / (1 + e)} for e in epochs]


def _curve(values: list[float]) -> list[dict[str, float]]:
    return [{"epoch": e, "dev_ndcg@10": v} for e, v in enumerate(values)]


def test_overfitting_warning_fires_on_planted_curve() -> None:
    warning = overfitting_warning(_curve([0.50, 0.60, 0.64, 0.62, 0.59]), _losses(4))
    assert warning is not None
    assert warning.startswith("dev nDCG@10 fell from 0.640 at epoch 2 to 0.590 at epoch 4 ")
    assert (
        "mean training loss kept dropping" in warning and "keep the epoch-2 checkpoint" in warning
    )
    # The curve is sorted by epoch first, and a fall right after the untuned model still counts.
    assert overfitting_warning(_curve([0.5, 0.6, 0.55])[::-1], _losses(2)) is not None
    assert "epoch 0 to" in (overfitting_warning(_curve([0.5, 0.45]), _losses(1)) or "")


def test_overfitting_warning_stays_quiet() -> None:
    losses = _losses(4)
    assert overfitting_warning(_curve([0.50, 0.60, 0.64, 0.65, 0.66]), losses) is None
    assert overfitting_warning(_curve([0.50, 0.60, 0.60]), losses) is None  # flat, not falling
    assert overfitting_warning(_curve([0.5]), []) is None
    assert overfitting_warning(_curve([0.5, 0.6, 0.55]), []) is None  # no loss to compare
    rising = [{"epoch": r["epoch"], "loss": 1 - r["loss"]} for r in _losses(2)]
    assert overfitting_warning(_curve([0.5, 0.6, 0.55]), rising) is None  # diverging, not overfit


def test_overfitting_warning_errors() -> None:
    with pytest.raises(ValueError, match=r"curve\[1\] has no 'dev_ndcg@10' key"):
        overfitting_warning([{"epoch": 0, "dev_ndcg@10": 0.5}, {"epoch": 1, "ndcg@10": 0.6}], [])
    with pytest.raises(ValueError, match=r"losses\[0\] has a non-finite value"):
        overfitting_warning(_curve([0.5, 0.6]), [{"epoch": 0.5, "loss": float("nan")}])
    with pytest.raises(
        ValueError, match=r"two dev evaluations at one epoch: epochs \[0.0, 1.0, 1.0\]"
    ):
        overfitting_warning(_curve([0.5, 0.6]) + [{"epoch": 1, "dev_ndcg@10": 0.7}], [])


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact is not in ../shared/data/scifact")
def test_scifact_train_test_leakage() -> None:
    from honed.data.beir import load_beir

    data = load_beir(SCIFACT)
    train, test = data.split("train"), data.split("test")
    report = find_duplicates(
        {q: data.queries[q] for q in train}, {q: data.queries[q] for q in test}
    )
    # SciFact pairs many claims with their negation ("increases" / "decreases") across splits.
    assert len(report.exact) == 2 and len(report.near) == 48
    assert {("1291", "1292"), ("871", "870")} == {(p.qid_a, p.qid_b) for p in report.exact}
    overlap = shared_positives(train, test)
    assert overlap["test_queries"] == 300
    assert overlap["test_queries_with_a_training_positive"] == 196
