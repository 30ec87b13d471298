"""`honed diagnose`: each measurement on data where the answer is known, every verdict branch,
the corpus encoded once, and the command's output and errors."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from honed.cli.main import main
from honed.diagnosis.config import DiagnoseConfig
from honed.diagnosis.cost import CostEstimate, estimate_cost
from honed.diagnosis.diagnoser import (
    BM25_MARGIN,
    Baseline,
    DataSize,
    Diagnosis,
    Verdict,
    decide,
    diagnose,
    render_diagnosis,
)
from honed.diagnosis.measure import (
    Difficulty,
    DomainTerm,
    Terminology,
    count_words,
    measure_difficulty,
    measure_terminology,
    reference_text,
    word_pieces,
)
from honed.diagnosis.probe import Probe

VOCAB_PATH = Path(__file__).resolve().parents[1] / "data" / "vocab.txt"


class ChunkTokenizer:
    """A tokenizer with known answers: words are cut into 3-letter pieces; "qq" is unknown."""

    unk_token = "[UNK]"

    def __call__(self, words: list[str], add_special_tokens: bool = False) -> dict[str, Any]:
        return {"input_ids": [self._pieces(w) for w in words]}

    @staticmethod
    def _pieces(word: str) -> list[str]:
        if "qq" in word:
            return ["[UNK]"]
        chunks = [word[i : i + 3] for i in range(0, len(word), 3)]
        return [chunks[0], *("##" + c for c in chunks[1:])]

    def convert_ids_to_tokens(self, ids: list[str]) -> list[str]:
        return list(ids)  # the "ids" above are already the pieces


# ------------------------------------------------------------------ terminology


def test_reference_text_ships_with_the_package() -> None:
    text = reference_text()
    assert 3000 < len(text.encode()) < 6000
    assert not text.startswith("#")  # the header comment is stripped
    assert sum(count_words([text], 10**9).values()) > 600


def test_count_words_lowercases_skips_digits_and_stops_at_the_limit() -> None:
    counts = count_words(["The the 42 T-cells", "never read"], max_words=4)
    assert counts == {"the": 2, "t": 1, "cells": 1}


def test_word_pieces_of_the_tiny_tokenizer(tiny_model: Any) -> None:
    pieces = word_pieces(tiny_model.tokenizer, ["vitamin", "zxqv"])
    assert pieces["vitamin"] == ("vitamin",)
    assert pieces["zxqv"] == ("z", "##x", "##q", "##v")


def test_terminology_shares_by_hand() -> None:
    # Pieces of 3 letters: "cat" 1, "abcdefg" 3, "qqa" unknown; reference: "dog" 1, "abcdefghij" 4.
    corpus = ["cat cat abcdefg abcdefg qqa cat"]  # 3 of 6 occurrences fragmented
    reference = "dog dog dog abcdefghij"  # 1 of 4
    t = measure_terminology(corpus, reference, ChunkTokenizer())
    assert (t.corpus_words, t.reference_words) == (6, 4)
    assert t.corpus_fragmented == pytest.approx(0.5)
    assert t.reference_fragmented == pytest.approx(0.25)
    assert t.ratio == pytest.approx(2.0)
    assert [term.word for term in t.terms] == ["abcdefg"]  # "qqa" occurs once: not a term
    assert t.terms[0] == DomainTerm("abcdefg", 2, ("abc", "##def", "##g"))


def test_made_up_words_fragment_more_than_everyday_english(tiny_model: Any) -> None:
    rng = random.Random(0)
    made_up = ["".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(10)) for _ in range(5)]
    # Four made-up words in every six: 67% fragmented, against about a third in the reference.
    corpus = [" ".join(["the", *(made_up[(i + k) % 5] for k in range(2)), "and",
                        *(made_up[(i + k) % 5] for k in range(2, 4))]) for i in range(20)]
    t = measure_terminology(corpus, reference_text(), tiny_model.tokenizer)
    assert t.corpus_fragmented > t.reference_fragmented
    assert t.ratio >= 1.5
    assert {term.word for term in t.terms} == set(made_up)
    for term in t.terms:
        assert len(term.pieces) >= 3 and term.count == 16
        assert "".join(p.removeprefix("##") for p in term.pieces) == term.word


def test_everyday_english_against_itself_has_ratio_one(tiny_model: Any) -> None:
    t = measure_terminology([reference_text()], reference_text(), tiny_model.tokenizer)
    assert t.ratio == pytest.approx(1.0)
    assert t.terms == ()  # nothing is more frequent in the corpus than in the reference


def test_terminology_floors_a_reference_without_fragmented_words() -> None:
    t = measure_terminology(["abcdefg cat cat cat"], "dog cat", ChunkTokenizer())
    assert t.reference_fragmented == 0.0
    assert t.ratio == pytest.approx(0.25 / 0.01)
    _, reasons = decide(t, _base(0.7, 0.6), _hard(0.0), _size(800))
    assert "vs 0.0% in everyday English (counted as 1%), ratio 25.00" in reasons[0]


def test_terminology_sample_is_capped() -> None:
    t = measure_terminology(["cat " * 50] * 10, "dog", ChunkTokenizer(), sample_words=120)
    assert t.corpus_words == 120


def test_terminology_without_words_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"corpus: no alphabetic words .*fix: check that the"):
        measure_terminology(["123 456", "!!"], "dog", ChunkTokenizer())
    with pytest.raises(ValueError, match=r"reference text: no alphabetic words"):
        measure_terminology(["cat"], "42", ChunkTokenizer())


# ------------------------------------------------------------------ difficulty


def test_difficulty_margins_and_misses_by_hand() -> None:
    doc_emb = np.eye(12, dtype=np.float32)  # (12, 12): doc i is the unit vector e_i
    doc_ids = [f"d{i}" for i in range(12)]
    weights = np.linspace(1.0, 0.45, 12)  # query score of doc i; strictly decreasing
    query = (weights / np.linalg.norm(weights)).astype(np.float32)
    query_emb = np.stack([query, query, query])  # (3, 12)
    qrels = {
        "easy": {"d0": 1},  # ranked first: margin (w0 - w1) > 0, a hit
        "hard": {"d11": 1, "d0": 0},  # ranked last: 11 documents above it, a miss
        "none": {"d3": 0},  # no positive: left out
    }
    d = measure_difficulty(query_emb, doc_emb, ["easy", "hard", "none"], doc_ids, qrels)
    scale = np.linalg.norm(weights)
    easy, hard = (weights[0] - weights[1]) / scale, (weights[11] - weights[0]) / scale
    assert d.queries == 2
    assert d.median_margin == pytest.approx((easy + hard) / 2, abs=1e-6)
    assert d.negative_margin_share == 0.5
    assert d.miss_top10_share == 0.5


def test_difficulty_counts_a_positive_at_rank_ten_as_a_hit() -> None:
    doc_emb = np.eye(12, dtype=np.float32)
    weights = np.linspace(1.0, 0.45, 12)
    query = (weights / np.linalg.norm(weights)).astype(np.float32)[None, :]  # (1, 12)
    ids = [f"d{i}" for i in range(12)]
    assert measure_difficulty(query, doc_emb, ["q"], ids, {"q": {"d9": 1}}).miss_top10_share == 0
    assert measure_difficulty(query, doc_emb, ["q"], ids, {"q": {"d10": 1}}).miss_top10_share == 1


def test_difficulty_without_positives_is_an_error() -> None:
    emb = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match=r"qrels: no query with a positive .*fix: check the dev"):
        measure_difficulty(emb, emb, ["q1", "q2"], ["d1", "d2"], {"q1": {"d1": 0}})


# ------------------------------------------------------------------ cost


def test_cost_is_honed_runs_cost_model_with_its_defaults(tiny_model: Any) -> None:
    """diagnose prices the run with the run's own cost model: the defaults' step count (first
    round + second round, batch 64), stages that add up, nothing priced for what is cached."""
    from honed.training.config import TrainConfig
    from honed.training.cost_model import Workload

    defaults = TrainConfig()
    docs = [f"document {i} " + "word " * (i % 40) for i in range(300)]
    queries = [f"query {i}" for i in range(150)]
    work = Workload(n_docs=300, n_queries=150, train_queries=100, train_pairs=130,
                    dev_queries=20, test_queries=30)
    cost = estimate_cost(tiny_model, docs, queries, work, precision="fp32")
    per_epoch = math.ceil(130 / defaults.batch_size)
    assert cost.steps == (defaults.epochs + defaults.remine_epochs) * per_epoch
    assert cost.epochs == defaults.epochs + defaults.remine_epochs  # read, not copied
    assert set(cost.stages) == {"baseline", "mine", "train", "evaluate"}
    assert cost.total_seconds == pytest.approx(sum(cost.stages.values()))
    assert cost.stages["train"] > cost.steps * cost.step_seconds > 0  # + dev evaluations
    cached = estimate_cost(tiny_model, docs, queries,
                           Workload(**{**work.__dict__, "docs_cached": 300, "queries_cached": 150}),
                           precision="fp32")  # fmt: skip
    assert cached.stages["baseline"] < cost.stages["baseline"]  # encodes nothing: BM25 and metrics


def test_cost_names_the_budget_option_over_an_hour() -> None:
    short = CostEstimate(100, 0, 50, 6, 6, 1.0, 40, 1.0, {"train": 600.0})
    assert short.long_run is None
    long = CostEstimate(100, 0, 50, 6, 600, 10.0, 40, 1.0, {"baseline": 60.0, "train": 7200.0})
    assert long.long_run is not None and "--time-budget" in long.long_run


# ------------------------------------------------------------------ verdict


def _term(ratio: float) -> Terminology:
    return Terminology(10_000, 0.05 * ratio, 700, 0.05, ratio, ())


def _base(dense: float, bm25: float) -> Baseline:
    return Baseline(30, dense, 0.8, bm25, 0.8)


def _hard(miss: float) -> Difficulty:
    return Difficulty(30, 0.01, 0.3, miss)


def _size(pairs: int) -> DataSize:
    return DataSize(5000, pairs, pairs, 30)


def test_verdict_worth_it_with_two_signals_and_enough_pairs() -> None:
    verdict, reasons = decide(_term(2.0), _base(0.60, 0.65), _hard(0.1), _size(800))
    assert verdict is Verdict.WORTH_IT
    assert "ratio 2.00 (at or above 1.5)" in reasons[0]
    assert "loses to BM25" in reasons[1] and "0.600 vs 0.650, -0.050" in reasons[1]
    assert "10% of dev queries" in reasons[2] and "(below 20%)" in reasons[2]
    assert "800 verified training pairs" in reasons[3]
    assert reasons[-1] == "2 of 3 signals fire and 800 >= 300 pairs."


def test_verdict_marginal_with_one_signal() -> None:
    verdict, reasons = decide(_term(1.2), _base(0.70, 0.60), _hard(0.25), _size(800))
    assert verdict is Verdict.MARGINAL
    assert "beats BM25" in reasons[1] and "+0.100" in reasons[1]
    assert reasons[-1].startswith("1 of 3 signals fire (worth it needs 2)")


def test_verdict_marginal_with_signals_but_few_pairs() -> None:
    verdict, reasons = decide(_term(3.0), _base(0.5, 0.6), _hard(0.5), _size(150))
    assert verdict is Verdict.MARGINAL
    assert "3 of 3 signals fire" in reasons[-1] and "150 pairs (worth it needs 300)" in reasons[-1]


def test_dense_within_the_bm25_margin_counts_as_not_beating_it() -> None:
    _, reasons = decide(_term(1.0), _base(0.60 + BM25_MARGIN / 2, 0.60), _hard(0.0), _size(800))
    assert "does not beat BM25" in reasons[1]


def test_verdict_not_recommended_with_too_few_pairs() -> None:
    verdict, reasons = decide(_term(3.0), _base(0.5, 0.6), _hard(0.5), _size(99))
    assert verdict is Verdict.NOT_RECOMMENDED
    assert reasons[-1].startswith("Too few pairs: 99 < 100")


def test_verdict_not_recommended_when_the_baseline_is_already_high() -> None:
    verdict, reasons = decide(_term(3.0), _base(0.93, 0.95), _hard(0.0), _size(5000))
    assert verdict is Verdict.NOT_RECOMMENDED
    assert reasons[-1].startswith("Baseline already high: dense nDCG@10 0.930 >= 0.9")


def test_probe_is_reported_but_not_voted() -> None:
    probe = Probe(rows=128, train_seconds=30.0, pool_documents=900, dev_ndcg10_before=0.5,
                  dev_ndcg10_after=0.55)
    assert probe.gain == pytest.approx(0.05) and probe.gain_per_minute == pytest.approx(0.1)
    args = (_term(1.0), _base(0.7, 0.6), _hard(0.0), _size(800))
    verdict, reasons = decide(*args, probe=probe)
    assert verdict is decide(*args)[0] is Verdict.MARGINAL
    assert any(r.startswith("Probe: 128 rows") and "+0.050" in r for r in reasons)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match=r"probe_rows: expected a positive integer, got 0"):
        DiagnoseConfig(data="x", probe_rows=0)
    with pytest.raises(ValueError, match=r"sample_words: expected a positive integer, got -1"):
        DiagnoseConfig(data="x", sample_words=-1)
    with pytest.raises(ValueError, match=r"'fast' is not a valid Precision"):
        DiagnoseConfig(data="x", precision="fast")  # type: ignore[arg-type]


_COST = CostEstimate(5000, 5000, 800, 6, 78, 17.2, 256, 9.0,
                     {"baseline": 12.0, "mine": 0.3, "train": 1500.0, "evaluate": 9.0})


def test_render_shows_every_section() -> None:
    terms = (DomainTerm("zxqv", 8, ("z", "##x", "##q", "##v")),)
    verdict, reasons = decide(_term(2.0), _base(0.6, 0.65), _hard(0.3), _size(800))
    diagnosis = Diagnosis(
        "data/x", "all-MiniLM-L6-v2", "cpu", Terminology(1000, 0.1, 700, 0.05, 2.0, terms),
        _base(0.6, 0.65), _hard(0.3), _size(800), _COST,
        Probe(128, 30.0, 900, 0.5, 0.55), verdict, reasons, 75.0,
    )
    text = render_diagnosis(diagnosis)
    assert text.startswith("# honed diagnose: data/x\n")
    assert "**Verdict: worth it**" in text and "1.2 min" in text
    for section in ("## Terminology", "## Baseline on dev (30 queries)",
                    "## Relationship difficulty", "## Data", "## Probe",
                    "## Estimated time of a full `honed run` (its defaults, this machine)"):
        assert section in text
    assert "| zxqv | 8 | z ##x ##q ##v |" in text
    assert "| dense (base model) | 0.6000 | 0.8000 |" in text
    assert "- training: ~25.0 min (78 steps of ~17.2 s: 6 epochs with the second round" in text
    assert "5,000 of 5,000 documents are cached by this diagnosis" in text
    no_terms = render_diagnosis(Diagnosis(**{**diagnosis.__dict__, "terminology": _term(1.0),
                                             "probe": None}))
    assert "No frequent domain term" in no_terms and "## Probe" not in no_terms


# ------------------------------------------------------------------ end to end


def _config(data: Path, model: Path, **kwargs: Any) -> DiagnoseConfig:
    return DiagnoseConfig(data=str(data), base_model=str(model), device="cpu",
                          precision="fp32", **kwargs)


def test_mini_beir_has_too_few_pairs_and_encodes_the_corpus_once(
    mini_beir: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import honed.encoding.encoder

    encoded: list[str] = []
    real = honed.encoding.encoder.encode_texts

    def counting(model: Any, texts: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        encoded.extend(texts)
        return real(model, texts, *args, **kwargs)

    monkeypatch.setattr(honed.encoding.encoder, "encode_texts", counting)
    d = diagnose(_config(mini_beir, tiny_model_path, cache_dir=None))  # no texts from disk
    # 16 train queries: dev takes min(30, 16 - 1) = 15 of them, leaving one pair to train on.
    assert (d.size.train_pairs, d.size.dev_queries, d.size.documents) == (1, 15, 40)
    assert d.verdict is Verdict.NOT_RECOMMENDED
    assert d.reasons[-1].startswith("Too few pairs: 1 < 100")
    # The corpus once, then the dev queries, then the other splits' (dev again from the cache).
    assert len(encoded) == len(set(encoded)) == 40 + 15 + 1 + 8
    assert 0 <= d.baseline.dense_ndcg10 <= 1 and 0 <= d.baseline.bm25_ndcg10 <= 1
    assert d.difficulty.queries == 15
    assert d.cost.stages["train"] > 0 and d.cost.train_pairs == 1 and d.cost.documents == 40
    assert d.cost.documents_cached == 0  # cache_dir=None: the run would encode the corpus again
    assert d.terminology.corpus_words > 100 and d.probe is None


def _write_easy_beir(folder: Path, n: int = 150) -> Path:
    """Every query is its document's text word for word: any encoder ranks it first."""
    words = [w for w in VOCAB_PATH.read_text().split() if w.isalpha() and len(w) > 3]
    rng = random.Random(1)
    texts = [" ".join(rng.sample(words, 8)) for _ in range(n)]
    (folder / "qrels").mkdir(parents=True)
    lines = [json.dumps({"_id": f"d{i}", "title": "", "text": t}) for i, t in enumerate(texts)]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    lines = [json.dumps({"_id": f"q{i}", "text": t}) for i, t in enumerate(texts)]
    (folder / "queries.jsonl").write_text("\n".join(lines) + "\n")
    header = "query-id\tcorpus-id\tscore\n"
    (folder / "qrels" / "train.tsv").write_text(
        header + "".join(f"q{i}\td{i}\t1\n" for i in range(n - 10)))
    (folder / "qrels" / "test.tsv").write_text(
        header + "".join(f"q{i}\td{i}\t1\n" for i in range(n - 10, n)))
    return folder


def test_planted_easy_dataset_is_not_recommended_because_the_baseline_is_high(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    d = diagnose(_config(_write_easy_beir(tmp_path / "easy"), tiny_model_path, probe=True,
                         probe_rows=16))
    assert d.size.train_pairs == 110  # 140 train queries, 30 carved off for dev
    assert d.baseline.dense_ndcg10 == pytest.approx(1.0)
    assert d.difficulty.miss_top10_share == 0 and d.difficulty.median_margin > 0
    assert d.verdict is Verdict.NOT_RECOMMENDED
    assert d.reasons[-1].startswith("Baseline already high: dense nDCG@10 1.000")
    assert d.probe is not None and d.probe.rows == 16
    assert d.probe.dev_ndcg10_before == pytest.approx(1.0)
    assert 0 < d.probe.pool_documents <= 150 and math.isfinite(d.probe.gain)
    assert d.probe.train_seconds > 0


def test_cli_prints_the_report(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "diagnosis.md"
    code = main(["diagnose", str(mini_beir), "--base", str(tiny_model_path), "--device", "cpu",
                 "--precision", "fp32", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.startswith("# honed diagnose: ")
    assert "**Verdict: not recommended**" in printed
    assert out.read_text() in printed
    assert f"wrote {out}" in printed and "next: " in printed


def test_cli_bad_folder_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diagnose", str(tmp_path / "nope")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "does not exist" in lines[0] and "fix:" in lines[0]


# ------------------------------------------------------------------ every split and shift


def test_diagnose_flags_the_templated_train_free_form_test_shift(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    from shift_helpers import write_shift_beir, write_user_queries

    shifted = write_shift_beir(tmp_path / "shifted", shifted=True)
    user = write_user_queries(tmp_path / "user.txt")
    d = diagnose(DiagnoseConfig(data=str(shifted), base_model=str(tiny_model_path),
                                device="cpu", user_queries=str(user)))
    assert [m.name for m in d.splits] == ["train", "dev", "test", "user"]
    by_name = {m.name: m for m in d.splits}
    assert by_name["test"].dense_ndcg10 is not None and by_name["user"].dense_ndcg10 is None
    assert all(-1 <= m.top1_score <= 1 for m in d.splits)
    assert d.shift is not None and len(d.shift.warnings) == 2  # against test, against user
    assert d.shift.warnings[0].startswith("shift: train queries and dev queries look unlike the test")
    assert f"nDCG@10 {by_name['train'].dense_ndcg10:.3f} vs {by_name['test'].dense_ndcg10:.3f}" in (
        d.shift.warnings[0])
    assert any(r.startswith("Shift (reported, not voted):") for r in d.reasons)
    text = render_diagnosis(d)
    assert "## Every split (base model)" in text and "| user | 40 |" in text
    assert text.count("- warning: shift:") == 2


def test_diagnose_is_silent_on_one_population(tmp_path: Path, tiny_model_path: Path) -> None:
    from shift_helpers import write_shift_beir

    same = write_shift_beir(tmp_path / "same", shifted=False)
    d = diagnose(DiagnoseConfig(data=str(same), base_model=str(tiny_model_path), device="cpu"))
    assert d.shift is not None and d.shift.warnings == ()
    assert all(r.centroid_cosine is not None for r in d.shift.pairs.values())
    assert not any(r.startswith("Shift") for r in d.reasons)
    assert "No shift: the splits' lengths" in render_diagnosis(d)


def test_cli_diagnose_missing_queries_file_is_one_line_error(
    mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["diagnose", str(mini_beir), "--queries", str(tmp_path / "nope.txt")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.txt: no such file" in err[0]
