"""The budget planner on the mini dataset: grid, reference, recommendation, Pareto front, files, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from honed.cli.main import main
from honed.data.beir import load_beir
from honed.evaluation.metrics import evaluate
from honed.index.plan_report import render_plan, write_plan
from honed.index.planner import PlanResult, choose_on, plan, plan_embeddings
from honed.index.quantize import Quantization
from honed.retrieval.dense import search

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

GRID = {"dims": (16, 8), "shortlists": (5, 40)}


@pytest.fixture(scope="module")
def result(tiny_model: SentenceTransformer, mini_beir: Path) -> PlanResult:
    return plan(tiny_model, mini_beir, split="test", **GRID)


def test_grid_and_reference(
    result: PlanResult, tiny_model: SentenceTransformer, mini_beir: Path
) -> None:
    names = [r.name for r in result.rows]
    assert names[:3] == ["exact 32", "exact 16", "exact 8"]
    assert len(names) == 3 + 2 * 3 * 2 and "8 binary top-5" in names
    assert (result.dim, result.n_docs, result.n_queries, result.split) == (32, 40, 8, "test")
    # the reference is plain exact search, scored independently
    beir = load_beir(mini_beir)
    qrels, doc_ids = beir.split("test"), list(beir.corpus)
    docs = tiny_model.encode([beir.corpus[d].full_text for d in doc_ids], normalize_embeddings=True)
    qids = sorted(qrels)
    queries = tiny_model.encode([beir.queries[q] for q in qids], normalize_embeddings=True)
    run = search(queries, docs, qids, doc_ids, k=100)
    expected = evaluate(qrels, run, ["ndcg@10", "recall@10"])
    ref = result.reference
    assert ref.name == "exact 32" and ref.bytes_per_doc == 128 and ref.shortlist is None
    assert ref.ndcg_at_10 == pytest.approx(expected["ndcg@10"], abs=0.02)  # bf16 vs fp32 encoding
    assert ref.recall_at_10 == pytest.approx(expected["recall@10"], abs=0.13)


def test_shortlist_of_the_whole_corpus_matches_the_reference(result: PlanResult) -> None:
    whole = [r for r in result.rows if r.shortlist == 40]
    assert len(whole) == 6
    for row in whole:  # every document re-ranked at full dim: exact search, whatever the fast tier
        assert row.ndcg_at_10 == pytest.approx(result.reference.ndcg_at_10, abs=1e-9)
    short = [r for r in result.rows if r.shortlist == 5]
    assert all(r.recall_at_100 <= r.recall_at_10 + 1e-9 for r in short)  # only 5 returned


def test_costs(result: PlanResult) -> None:
    by_name = {r.name: r for r in result.rows}
    assert by_name["16 float32 top-5"].bytes_per_doc == 64
    assert by_name["16 int8 top-5"].bytes_per_doc == 16
    assert by_name["16 binary top-5"].bytes_per_doc == 2
    assert all(0 < r.latency_ms_median <= r.latency_ms_p95 for r in result.rows)


def test_recommendation_is_the_cheapest_within_tolerance(result: PlanResult) -> None:
    # Within tolerance = the lower end of the 95% interval of the per-query difference, not the
    # mean (tests/index/test_plan_noise.py has the cases where the two disagree).
    floor = -result.reference.ndcg_at_10 * 0.01
    good = [r for r in result.rows if r.ci_low is not None and r.ci_low >= floor]
    assert result.reference in good and result.reference.ci_low == 0.0
    rec = result.recommended
    assert rec in good
    assert rec.bytes_per_doc == min(r.bytes_per_doc for r in good)
    cheapest = [r for r in good if r.bytes_per_doc == rec.bytes_per_doc]
    assert rec.latency_ms_median == min(r.latency_ms_median for r in cheapest)


def test_pareto_front(result: PlanResult) -> None:
    for cost in ("bytes_per_doc", "latency_ms_median"):
        front = result.pareto(cost)
        assert front and [getattr(r, cost) for r in front] == sorted(
            getattr(r, cost) for r in front
        )
        for row in front:
            assert not any(
                getattr(o, cost) <= getattr(row, cost)
                and o.ndcg_at_10 >= row.ndcg_at_10
                and (getattr(o, cost), o.ndcg_at_10) != (getattr(row, cost), row.ndcg_at_10)
                for o in result.rows
            )
        best = max(result.rows, key=lambda r: (r.ndcg_at_10, -getattr(r, cost)))
        assert best in front


def test_render_and_write(result: PlanResult, tmp_path: Path) -> None:
    text = render_plan(result)
    assert "| configuration | bytes/doc | nDCG@10 |" in text
    assert f"Recommended: **{result.recommended.name}**" in text
    assert text.count("\n| ") == len(result.rows) + 1  # header + one line per configuration
    paths = write_plan(result, tmp_path / "plan")
    assert [p.name for p in paths] == ["plan.md", "plan.json", "plan.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(paths[1].read_text())
    assert saved["recommended"]["name"] == result.recommended.name and len(saved["rows"]) == 15


def test_recommends_a_cheap_tier_when_it_is_as_good() -> None:
    # Documents whose first 4 dims already separate them: every 4-dim shortlist keeps quality.
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((60, 16))
    docs[:, :4] *= 10
    queries = docs[:10] + 0.01 * rng.standard_normal((10, 16))
    qids, dids = [f"q{i}" for i in range(10)], [f"d{i}" for i in range(60)]
    qrels = {q: {d: 1} for q, d in zip(qids, dids)}
    result = plan_embeddings(docs, dids, queries, qids, qrels, dims=(4,), shortlists=(10,))
    assert result.reference.ndcg_at_10 == pytest.approx(1.0)
    assert result.recommended.name == "4 binary top-10" and result.recommended.bytes_per_doc == 1


def test_plan_errors(tiny_model: SentenceTransformer, mini_beir: Path) -> None:
    with pytest.raises(
        ValueError, match="no Matryoshka dim below the full width 32 .*fix: pass dims"
    ):
        plan(tiny_model, mini_beir)
    with pytest.raises(
        ValueError,
        match=r"dims: each must be an integer in \[1, 31\] \(below the full width\), got 32",
    ):
        plan(tiny_model, mini_beir, dims=(32,))
    with pytest.raises(ValueError, match="shortlists: each must be a positive integer, got 0"):
        plan(tiny_model, mini_beir, dims=(8,), shortlists=(0,))
    with pytest.raises(ValueError, match="shortlists is empty"):
        plan(tiny_model, mini_beir, dims=(8,), shortlists=())
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        plan(tiny_model, mini_beir, split="dev", dims=(8,))
    emb = np.eye(4)
    with pytest.raises(ValueError, match="precision: expected one of float32, int8, binary"):
        plan_embeddings(
            emb, list("abcd"), emb, list("abcd"), {"a": {"a": 1}}, dims=(2,), precisions=("fp8",)
        )
    with pytest.raises(ValueError, match="query_ids has 3 ids for 4 query embeddings"):
        plan_embeddings(emb, list("abcd"), emb, list("abc"), {"a": {"a": 1}}, dims=(2,))


def test_cli_plan(
    tiny_model_path: Path, mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan"
    argv = ["plan", str(tiny_model_path), str(mini_beir), "--dims", "16,8", "--shortlists", "5,40"]
    assert main([*argv, "--precisions", "float32,int8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Recommended: **" in printed and "int8" in printed and "binary" not in printed
    assert f"wrote {out}/plan.md" in printed and (out / "plan.png").is_file()
    assert "next: honed index" in printed or "next: keep exact" in printed
    assert main(["plan", str(tiny_model_path), str(mini_beir), "--dims", "64"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: dims: each must be an integer in [1, 31] (below the full width), got 64"
    ]


def test_quantization_is_recorded(result: PlanResult) -> None:
    assert {r.precision for r in result.rows} == set(Quantization)


def test_plan_embeddings_equals_plan(
    result: PlanResult, tiny_model: SentenceTransformer, mini_beir: Path
) -> None:
    # The in-memory planner (what `honed run` calls) on the same embeddings `plan` encodes.
    from honed.encoding.encoder import EmbeddingCache

    beir = load_beir(mini_beir)
    qrels, doc_ids, cache = beir.split("test"), list(beir.corpus), EmbeddingCache()
    docs = cache.encode(tiny_model, [beir.corpus[d].full_text for d in doc_ids])
    qids = sorted(qrels)
    queries = cache.encode(tiny_model, [beir.queries[q] for q in qids])
    in_memory = plan_embeddings(docs, doc_ids, queries, qids, qrels, **GRID)

    def scores(r: PlanResult) -> list[tuple[object, ...]]:  # latencies are measured, not computed
        return [(row.name, row.bytes_per_doc, row.ndcg_at_10, row.recall_at_100) for row in r.rows]

    assert scores(in_memory) == scores(result)
    assert (in_memory.dim, in_memory.n_docs, in_memory.n_queries) == (32, 40, 8)
    assert in_memory.reference == replace(
        result.reference,
        latency_ms_median=in_memory.reference.latency_ms_median,
        latency_ms_p95=in_memory.reference.latency_ms_p95,
    )


def _two_splits() -> tuple[PlanResult, PlanResult]:
    rng = np.random.default_rng(1)
    docs = rng.standard_normal((80, 16))
    queries = docs[:20] + 0.5 * rng.standard_normal((20, 16))
    qids, dids = [f"q{i}" for i in range(20)], [f"d{i}" for i in range(80)]
    qrels = {q: {d: 1} for q, d in zip(qids, dids)}
    grid = {"dims": (8, 4), "shortlists": (5, 20)}
    dev = plan_embeddings(docs, dids, queries[:10], qids[:10], qrels, split="dev", **grid)
    test = plan_embeddings(docs, dids, queries[10:], qids[10:], qrels, split="test", **grid)
    return dev, test


def test_choose_on_dev_report_on_test(tmp_path: Path) -> None:
    dev, test = _two_splits()
    chosen = choose_on(dev, test)
    assert chosen.chosen_on == "dev" and chosen.split == "test"
    assert chosen.rows == test.rows and chosen.reference == test.reference
    assert chosen.recommended == next(r for r in test.rows if r.name == dev.recommended.name)
    text = render_plan(chosen)
    assert (
        "Recommended (chosen on dev, where it is the cheapest configuration not shown worse "
        f"than exact 16 by more than 1%): **{dev.recommended.name}**; on test:" in text
    )
    assert f"on {dev.n_queries} dev queries (2000 resamples)" in text
    assert f"Warning: this choice rests on only {dev.n_queries} dev queries" in text
    paths = write_plan(chosen, tmp_path / "metrics", plot_dir=tmp_path / "plots", markdown=False)
    assert paths == [tmp_path / "metrics" / "plan.json", tmp_path / "plots" / "plan.png"]
    assert PlanResult.from_dict(json.loads(paths[0].read_text())) == chosen  # round trip


def test_choose_on_needs_the_same_grid() -> None:
    dev, test = _two_splits()
    with pytest.raises(
        ValueError, match="expected the same configurations on dev and test, got 9 and 15 .*fix:"
    ):
        choose_on(replace(dev, rows=dev.rows[:9]), test)
