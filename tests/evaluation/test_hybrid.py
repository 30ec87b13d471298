"""Hybrid retrieval served from an index, the fusion record, and `honed evaluate --hybrid`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import honed.retrieval.bm25
from honed.cli.main import main
from honed.data.corpus import read_corpus
from honed.encoding.dims import truncate
from honed.index.index import Index
from honed.index.store import read_info
from honed.retrieval.bm25 import BM25Retriever
from honed.retrieval.dense import search
from honed.retrieval.fusion import FusionConfig, FusionMethod, fuse, fusion_from_run

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

QUERIES = ["vitamin D and bones", "insulin resistance", "malaria in Africa", "statins", "zzz"]


@pytest.fixture(scope="module")
def corpus(mini_beir: Path) -> tuple[list[str], list[str]]:
    return read_corpus(mini_beir)


@pytest.fixture(scope="module")
def hybrid_index(
    tiny_model: SentenceTransformer,
    corpus: tuple[list[str], list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """An exact (shortlist_dim = dim) index of the mini corpus with BM25 and a zscore fusion."""
    out = tmp_path_factory.mktemp("hybrid") / "ix"
    fusion = FusionConfig("zscore", 0.7, source="dev of runs/x", dev_ndcg10=0.5)
    Index.build(tiny_model, *corpus, out, shortlist_dim=32, bm25=True, fusion=fusion)
    return out


def _reference(
    index: Index, corpus: tuple[list[str], list[str]], q_emb: np.ndarray, fusion: FusionConfig
) -> dict[str, dict[str, float]]:
    """What `honed run` computes: exact dense top 100 and BM25 top 100, fused by honed.retrieval.fusion."""
    ids, texts = corpus
    qids = [str(i) for i in range(len(QUERIES))]
    dense = search(truncate(q_emb, 32), np.asarray(index.full), qids, ids, k=100)
    bm25 = BM25Retriever(ids, texts).search(qids, QUERIES, k=100)
    weights = [fusion.dense_weight, 1 - fusion.dense_weight]
    return fuse([dense, bm25], fusion.method, weights, fusion.k, depth=100)


def _assert_same_hits(a: list[list[tuple[str, float]]], b: list[list[tuple[str, float]]]) -> None:
    """Same ids in the same order; scores equal up to float32 renormalisation."""
    assert [[d for d, _ in row] for row in a] == [[d for d, _ in row] for row in b]
    for row_a, row_b in zip(a, b):
        np.testing.assert_allclose([s for _, s in row_a], [s for _, s in row_b], rtol=1e-5)


# --------------------------------------------------------------------------- index


@pytest.mark.parametrize("method", ["rrf", "minmax", "zscore"])
def test_search_hybrid_equals_fusing_the_dense_and_bm25_runs(
    method: str,
    hybrid_index: Path,
    tiny_model: SentenceTransformer,
    corpus: tuple[list[str], list[str]],
    tmp_path: Path,
) -> None:
    folder = Path(shutil.copytree(hybrid_index, tmp_path / "ix"))
    info = json.loads((folder / "index.json").read_text())
    info["fusion"] = {**info["fusion"], "method": method, "dense_weight": 0.4}
    (folder / "index.json").write_text(json.dumps(info))
    index = Index.load(folder, tiny_model)
    q_emb = tiny_model.encode(QUERIES, normalize_embeddings=True)
    hits = index.search_hybrid(QUERIES, q_emb, k=7)
    expected = _reference(index, corpus, q_emb, index.info.fusion)  # type: ignore[arg-type]
    for qid, row in enumerate(hits):
        want = list(expected[str(qid)].items())[:7]
        assert [d for d, _ in row] == [d for d, _ in want]
        np.testing.assert_allclose([s for _, s in row], [s for _, s in want], rtol=1e-5)


def test_bm25_folder_and_fusion_record_round_trip(
    hybrid_index: Path, corpus: tuple[list[str], list[str]]
) -> None:
    assert (hybrid_index / "bm25" / BM25Retriever.SETTINGS).is_file()
    info = read_info(hybrid_index)
    assert info.fusion == FusionConfig(
        FusionMethod.ZSCORE, 0.7, k=60, depth=100, source="dev of runs/x", dev_ndcg10=0.5
    )
    assert json.loads((hybrid_index / "index.json").read_text())["fusion"]["method"] == "zscore"
    retriever, fusion = Index.load(hybrid_index).hybrid_parts()
    assert isinstance(retriever._retriever.scores["data"], np.memmap)  # memory-mapped
    assert fusion == info.fusion
    fresh = BM25Retriever(*corpus)
    qids = [str(i) for i in range(len(QUERIES))]
    assert retriever.search(qids, QUERIES, k=10) == fresh.search(qids, QUERIES, k=10)


def test_in_memory_hybrid_index_agrees_with_the_written_one(
    hybrid_index: Path, tiny_model: SentenceTransformer, corpus: tuple[list[str], list[str]]
) -> None:
    written = Index.load(hybrid_index)
    memory = Index.from_embeddings(
        np.asarray(written.full),
        corpus[0],
        shortlist_dim=32,
        texts=corpus[1],
        bm25=True,
        fusion=written.info.fusion,
    )
    q_emb = tiny_model.encode(QUERIES, normalize_embeddings=True)
    _assert_same_hits(memory.search_hybrid(QUERIES, q_emb), written.search_hybrid(QUERIES, q_emb))


def test_k_beyond_depth_and_small_shortlist(
    hybrid_index: Path, tiny_model: SentenceTransformer
) -> None:
    index = Index.load(hybrid_index)
    q_emb = tiny_model.encode(QUERIES[:1], normalize_embeddings=True)
    # the dense run fed to fusion is always `depth` deep, whatever the shortlist
    assert index.search_hybrid(QUERIES[:1], q_emb, k=5, shortlist=5) == index.search_hybrid(
        QUERIES[:1], q_emb, k=5, shortlist=200
    )
    assert len(index.search_hybrid(QUERIES[:1], q_emb, k=500)[0]) == 40  # the whole corpus


def test_older_index_json_without_fusion_loads(hybrid_index: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(hybrid_index, tmp_path / "ix"))
    info = json.loads((folder / "index.json").read_text())
    del info["fusion"]
    (folder / "index.json").write_text(json.dumps(info))
    index = Index.load(folder)
    assert index.info.fusion is None
    with pytest.raises(ValueError, match=r"records no fusion method and weight.*--fusion-from"):
        index.search_hybrid(["q"], np.ones((1, 32)))


def test_hybrid_without_bm25_names_the_fix(tiny_model: SentenceTransformer, tmp_path: Path) -> None:
    index = Index.from_embeddings(np.eye(4, 32), ["a", "b", "c", "d"], 4, out=tmp_path / "ix")
    with pytest.raises(
        FileNotFoundError, match=r"no BM25 index \(bm25/\).*--bm25 --fusion-from RUN_DIR"
    ):
        index.search_hybrid(["q"], np.ones((1, 32)))
    with pytest.raises(FileNotFoundError, match="in-memory index: no BM25 index"):
        Index.from_embeddings(np.eye(4, 32), ["a", "b", "c", "d"], 4).hybrid_parts()


def test_hybrid_argument_errors(hybrid_index: Path) -> None:
    emb, ids = np.eye(2, 8), ["a", "b"]
    with pytest.raises(ValueError, match="fusion needs a BM25 index"):
        Index.from_embeddings(emb, ids, 4, texts=["x", "y"], fusion=FusionConfig("rrf", 0.5))
    with pytest.raises(ValueError, match="bm25=True needs the document texts"):
        Index.from_embeddings(emb, ids, 4, bm25=True)
    with pytest.raises(ValueError, match="expected a honed.retrieval.fusion.FusionConfig, got dict"):
        Index.from_embeddings(emb, ids, 4, texts=["x", "y"], bm25=True, fusion={"method": "rrf"})  # type: ignore[arg-type]
    index = Index.load(hybrid_index)
    with pytest.raises(ValueError, match="query_texts has 2 texts but query_emb has 1 rows"):
        index.search_hybrid(["a", "b"], np.ones((1, 32)))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search_hybrid(["a"], np.ones((1, 32)), k=0)


def test_failed_bm25_write_leaves_no_half_index(
    tiny_model: SentenceTransformer,
    corpus: tuple[list[str], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(self: BM25Retriever, folder: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(BM25Retriever, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        Index.build(tiny_model, *corpus, tmp_path / "ix", shortlist_dim=16, bm25=True)
    assert not (tmp_path / "ix").exists()  # never a half index (OUT.partial may stay, to resume)


# --------------------------------------------------------------------------- BM25 save / load


def test_bm25_load_errors(
    corpus: tuple[list[str], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    BM25Retriever(*corpus).save(tmp_path / "b")
    with pytest.raises(ValueError, match="BM25 index of 40 documents, but 3 ids were given"):
        BM25Retriever.load(tmp_path / "b", ["a", "b", "c"])
    with pytest.raises(FileNotFoundError, match="honed_bm25.json: missing"):
        BM25Retriever.load(tmp_path, corpus[0])
    settings = tmp_path / "b" / BM25Retriever.SETTINGS
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "stemmed": True}))
    monkeypatch.setattr(honed.retrieval.bm25, "_english_stemmer", lambda: None)
    with pytest.raises(ImportError, match="pip install PyStemmer"):
        BM25Retriever.load(tmp_path / "b", corpus[0])
    (tmp_path / "b" / "vocab.index.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable BM25 index.*fix: x"):
        BM25Retriever.load(tmp_path / "b", corpus[0], fix="fix: x")


# --------------------------------------------------------------------------- fusion record


def test_fusion_config_validation() -> None:
    assert FusionConfig("rrf", 1).dense_weight == 1.0
    with pytest.raises(ValueError, match="method: expected one of rrf, minmax, zscore, got 'max'"):
        FusionConfig("max", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"dense_weight: expected a number in \[0, 1\]"):
        FusionConfig("rrf", 1.5)
    with pytest.raises(ValueError, match="depth: expected a positive integer, got 0"):
        FusionConfig("rrf", 0.5, depth=0)
    with pytest.raises(ValueError, match=r"missing \['dense_weight'\]"):
        FusionConfig.from_dict({"method": "rrf"})
    config = FusionConfig("minmax", 0.3, source="user")
    assert FusionConfig.from_dict(config.to_dict()) == config


def test_fusion_from_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a finished honed run"):
        fusion_from_run(tmp_path)
    (tmp_path / "metrics").mkdir()
    evidence = tmp_path / "metrics" / "evidence.json"
    evidence.write_text(json.dumps({"test": {}}))
    with pytest.raises(ValueError, match="records no fusion.*--fusion METHOD --dense-weight W"):
        fusion_from_run(tmp_path)
    evidence.write_text(
        json.dumps({"fusion": {"method": "zscore", "weight": 0.7, "dev_ndcg10": 0.8, "grid": []}})
    )
    assert fusion_from_run(tmp_path) == FusionConfig(
        "zscore", 0.7, source=f"dev of {tmp_path}", dev_ndcg10=0.8
    )


# --------------------------------------------------------------------------- CLI


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]) and "Traceback" not in err
    return lines[0]


def test_cli_index_fusion_from_and_search_hybrid(
    tiny_model_path: Path, mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    fusion = {"method": "minmax", "weight": 0.6, "dev_ndcg10": 0.5, "grid": []}
    (run / "metrics" / "evidence.json").write_text(json.dumps({"fusion": fusion}))
    out = tmp_path / "ix"
    args = ["index", str(tiny_model_path), str(mini_beir), "--out", str(out)]
    assert main([*args, "--shortlist-dim", "16", "--fusion-from", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "bm25/" in printed and f"minmax, dense weight 0.6 (dev of {run})" in printed
    assert f'next: honed search {out} "your query" --hybrid' in printed
    assert (out / "bm25").is_dir() and read_info(out).fusion.source == f"dev of {run}"  # type: ignore[union-attr]
    assert main(["search", str(out), "vitamin D and bones", "-k", "3", "--hybrid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("top 3 of 40 (hybrid minmax, dense weight 0.6 (dev of ")
    assert [line.split()[0] for line in lines[1:]] == ["1.", "2.", "3."]


def test_cli_index_bm25_and_fusion_flags(
    tiny_model_path: Path, mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ix"
    args = ["index", str(tiny_model_path), str(mini_beir), "--out", str(out), "--overwrite"]
    args += ["--shortlist-dim", "16"]
    assert main([*args, "--fusion", "rrf", "--dense-weight", "0.5"]) == 0
    assert "hybrid: rrf, dense weight 0.5 (user)" in capsys.readouterr().out
    assert main([*args, "--bm25"]) == 0
    assert "no fusion recorded, so search --hybrid will refuse" in capsys.readouterr().out
    assert (out / "bm25").is_dir() and read_info(out).fusion is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["index", "{model}", "{beir}", "--out", "{tmp}/a", "--fusion", "rrf"], "needs --dense-weight W"),
        (["index", "{model}", "{beir}", "--out", "{tmp}/a", "--dense-weight", "0.5"], "goes with --fusion"),
        (["index", "{model}", "{beir}", "--out", "{tmp}/a", "--fusion", "rrf", "--dense-weight", "2"], r"dense_weight: expected a number in \[0, 1\]"),
        (["index", "{model}", "{beir}", "--out", "{tmp}/a", "--fusion-from", "{tmp}/none"], "is not a finished honed run"),
        (["search", "{plain}", "q", "--hybrid"], r"no BM25 index \(bm25/\).*--fusion-from RUN_DIR"),
        (["search", "{bm25_only}", "q", "--hybrid"], "records no fusion method and weight"),
        (["evaluate", "{model}", "{no_train}", "--hybrid"], "no dev split to choose the fusion on"),
    ],
)  # fmt: skip
def test_cli_hybrid_one_line_errors(
    argv: list[str],
    message: str,
    tiny_model: SentenceTransformer,
    tiny_model_path: Path,
    mini_beir: Path,
    corpus: tuple[list[str], list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain, bm25_only, no_train = tmp_path / "plain", tmp_path / "bm25", tmp_path / "beir"
    if "{plain}" in argv:
        Index.build(tiny_model, *corpus, plain, shortlist_dim=16)
    if "{bm25_only}" in argv:
        Index.build(tiny_model, *corpus, bm25_only, shortlist_dim=16, bm25=True)
    if "{no_train}" in argv:
        shutil.copytree(mini_beir, no_train)
        (no_train / "qrels" / "train.tsv").unlink()
    values = {
        "model": tiny_model_path, "beir": mini_beir, "tmp": tmp_path,
        "plain": plain, "bm25_only": bm25_only, "no_train": no_train,
    }  # fmt: skip
    assert main([a.format(**values) for a in argv]) == 1
    assert re.search(message, _one_error_line(capsys.readouterr().err))


def test_cli_evaluate_hybrid(
    tiny_model_path: Path, mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hybrid.json"
    argv = ["evaluate", str(tiny_model_path), str(mini_beir), "--hybrid", "--n-resamples", "200"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line.split(" | ")[0] for line in printed.splitlines() if line.startswith("| ")]
    assert rows == ["| system", "| dense", "| bm25", "| hybrid"]
    assert "queries carved from train as honed run does" in printed
    assert "hybrid vs dense: " in printed and "hybrid vs bm25: " in printed
    assert re.search(
        r"^Deploy (dense|bm25|hybrid) retrieval \(decided on dev nDCG@10", printed, re.M
    )
    assert "next: honed index " in printed
    saved = json.loads(out.read_text())
    assert saved["fusion"]["source"] == f"dev of {mini_beir}"
    assert set(saved["dev_ndcg10"]) == {"dense", "bm25", "hybrid"}
    assert {(t["system_a"], t["system_b"]) for t in saved["tests"]} == {
        ("dense", "bm25"), ("dense", "hybrid"), ("bm25", "hybrid"),
    }  # fmt: skip
    table = saved["metrics"]
    # the hybrid row is the fusion of the dense (full dim) and BM25 runs that the rows above report
    assert table["hybrid"]["hybrid"]["ndcg@10"] >= 0 and "32" in table["dense"]


def test_cli_evaluate_with_a_given_fusion(
    tiny_model_path: Path, mini_beir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", str(tiny_model_path), str(mini_beir), "--n-resamples", "200"]
    assert main([*argv, "--fusion", "rrf", "--dense-weight", "0.5"]) == 0  # implies --hybrid
    printed = capsys.readouterr().out
    assert "hybrid = dense@32 + BM25 by rrf, dense weight 0.5 (given)" in printed
