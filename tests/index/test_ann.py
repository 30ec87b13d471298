"""The HNSW shortlist: same results as the flat scan on small data, files, errors, CLI."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import honed.index.search
from honed.cli.main import main
from honed.data.corpus import read_corpus
from honed.index.ann import AnnKind, HnswConfig, as_hnsw, build_hnsw, import_faiss
from honed.index.index import Index
from honed.index.store import read_info

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

faiss = pytest.importorskip("faiss")

SD = 16  # shortlist dim used with the 32-dim tiny model
QUERIES = ["vitamin D and bones", "insulin", "malaria in Africa", "statins", "sleep", "fever"]


def _ids(hits: list[list[tuple[str, float]]]) -> list[list[str]]:
    return [[doc for doc, _ in row] for row in hits]


@pytest.fixture(scope="module")
def hnsw_index(tiny_model: SentenceTransformer, mini_beir: Path, tmp_path_factory) -> Path:
    """The mini corpus indexed with an HNSW graph (float32 fast tier), built once."""
    out = tmp_path_factory.mktemp("ann") / "ix"
    ids, texts = read_corpus(mini_beir)
    Index.build(tiny_model, ids, texts, out, shortlist_dim=SD, ann="hnsw")
    return out


@pytest.fixture
def broken(hnsw_index: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(hnsw_index, tmp_path / "ix"))


def _synthetic(n: int, dim: int, seed: int) -> np.ndarray:
    """Vectors whose leading dims carry most of the variance, as in a Matryoshka model."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)) / np.sqrt(1 + np.arange(dim))).astype(np.float32)


# --------------------------------------------------------------------------- search


def test_hnsw_top10_equals_flat_two_stage_on_the_tiny_model(
    hnsw_index: Path, tiny_model: SentenceTransformer, mini_beir: Path
) -> None:
    index = Index.load(hnsw_index, tiny_model)
    assert index.ann is not None and index.info.ann is AnnKind.HNSW
    texts = QUERIES + read_corpus(mini_beir)[1]  # 46 queries, documents included
    queries = tiny_model.encode(texts, normalize_embeddings=True)
    graph = index.search(queries, k=10, shortlist=20)
    flat = index.search(queries, k=10, shortlist=20, exact_shortlist=True)
    # Both shortlist on the float32 prefixes; the graph searches efSearch = 40 = all documents.
    assert _ids(graph) == _ids(flat)
    np.testing.assert_allclose(
        [s for r in graph for _, s in r], [s for r in flat for _, s in r], rtol=1e-5
    )


def test_hnsw_top10_equals_flat_on_2000_vectors() -> None:
    emb, ids = _synthetic(2000, 48, 0), [f"d{i}" for i in range(2000)]
    queries = _synthetic(50, 48, 1)
    flat = Index.from_embeddings(emb, ids, shortlist_dim=16)
    graph = Index.from_embeddings(emb, ids, shortlist_dim=16, ann=HnswConfig(threads=1))
    expected = flat.search(queries, k=10, shortlist=100)
    got = graph.search(queries, k=10, shortlist=100, ef_search=400)
    same = sum(a == b for a, b in zip(_ids(got), _ids(expected)))
    assert same >= 49  # efSearch 400 of 2,000 documents: (nearly) exact
    assert graph.search(queries, 10, 100, exact_shortlist=True) == expected


def test_exact_shortlist_never_touches_the_graph(
    hnsw_index: Path, tiny_model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index.load(hnsw_index)
    queries = tiny_model.encode(QUERIES, normalize_embeddings=True)

    def broken_graph(*args: object) -> None:
        raise AssertionError("the graph was searched")

    monkeypatch.setattr(honed.index.search, "hnsw_shortlist", broken_graph)
    hits = index.search(queries, k=5, shortlist=10, exact_shortlist=True)
    assert len(hits) == 6 and all(len(row) == 5 for row in hits)
    with pytest.raises(AssertionError, match="the graph was searched"):
        index.search(queries, k=5, shortlist=10)


def test_a_shortlist_larger_than_the_graph_finds() -> None:
    """faiss marks missing neighbours -1: they must never become results."""
    emb = _synthetic(30, 8, 2)
    index = Index.from_embeddings(emb, [f"d{i}" for i in range(30)], 4, ann="hnsw")
    hits = index.search(_synthetic(3, 8, 3), k=30, shortlist=30)
    assert all(sorted(doc for doc, _ in row) == sorted(f"d{i}" for i in range(30)) for row in hits)


def test_ef_search_and_config_errors() -> None:
    index = Index.from_embeddings(_synthetic(20, 8, 4), [f"d{i}" for i in range(20)], 4, ann="hnsw")
    with pytest.raises(ValueError, match="ef_search must be a positive integer, got 0"):
        index.search(_synthetic(1, 8, 5), k=5, shortlist=10, ef_search=0)
    with pytest.raises(
        ValueError, match=r"ann: expected one of 'hnsw' or None \(flat\), got 'ivf'"
    ):
        as_hnsw("ivf")
    with pytest.raises(ValueError, match="HnswConfig.m must be a positive integer, got 0"):
        HnswConfig(m=0)
    with pytest.raises(ValueError, match="HnswConfig.threads must be a positive integer, got -1"):
        HnswConfig(threads=-1)
    assert as_hnsw("hnsw") == HnswConfig() and as_hnsw(None) is None


def test_threads_setting_is_restored() -> None:
    before = faiss.omp_get_max_threads()
    build_hnsw([_synthetic(50, 8, 6)], 8, 50, HnswConfig(threads=1))
    assert faiss.omp_get_max_threads() == before


# --------------------------------------------------------------------------- files


def test_save_load_round_trip(tmp_path: Path) -> None:
    emb, ids = _synthetic(500, 32, 7), [f"d{i}" for i in range(500)]
    memory = Index.from_embeddings(emb, ids, 8, "binary", ann=HnswConfig(threads=1))
    disk = Index.from_embeddings(
        emb, ids, 8, "binary", out=tmp_path / "ix", ann=HnswConfig(threads=1), chunk_size=64
    )
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == [
        "full.npy", "ids.json", "index.json", "short.hnsw", "short.npy",
    ]  # fmt: skip
    assert json.loads((tmp_path / "ix" / "index.json").read_text())["ann"] == "hnsw"
    loaded = Index.load(tmp_path / "ix")
    assert loaded.info == disk.info and loaded.info.ann is AnnKind.HNSW
    assert (loaded.ann.ntotal, loaded.ann.d, loaded.ann.hnsw.efConstruction) == (500, 8, 128)
    queries = _synthetic(20, 32, 8)
    assert loaded.search(queries, 10, 50) == memory.search(queries, 10, 50)


def test_an_index_json_without_ann_loads_flat(hnsw_index: Path, broken: Path) -> None:
    info = json.loads((broken / "index.json").read_text())
    del info["ann"]  # as written before the field existed
    (broken / "index.json").write_text(json.dumps(info))
    (broken / "short.hnsw").unlink()
    index = Index.load(broken)
    assert index.info.ann is None and index.ann is None
    (broken / "index.json").write_text(json.dumps({**info, "ann": "ivf"}))
    with pytest.raises(ValueError, match="index.json: unreadable or incomplete .*'ivf'"):
        Index.load(broken)


def test_truncated_graph_is_one_line_error(broken: Path) -> None:
    data = (broken / "short.hnsw").read_bytes()
    (broken / "short.hnsw").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        Index.load(broken)
    message = str(err.value)
    assert "\n" not in message
    assert (
        "short.hnsw: unreadable HNSW graph, truncated or corrupted (read error in short.hnsw: "
        in message
    )
    assert message.endswith("--precision float32 --ann hnsw --overwrite")


def test_corrupted_missing_and_foreign_graphs(broken: Path, tmp_path: Path) -> None:
    (broken / "short.hnsw").write_bytes(b"not a faiss file" * 8)
    with pytest.raises(
        ValueError,
        match=r"short.hnsw: unreadable HNSW graph, truncated or corrupted \(Index type 0x\w+ \(\"not \"\) not recognized\); fix: rebuild",
    ):
        Index.load(broken)
    other = Index.from_embeddings(_synthetic(7, 32, 9), list("abcdefg"), SD, ann="hnsw")
    faiss.write_index(other.ann, str(broken / "short.hnsw"))
    with pytest.raises(
        ValueError, match="short.hnsw: holds 7 vectors of 16 dims, but index.json expects 40 of 16"
    ):
        Index.load(broken)
    (broken / "short.hnsw").unlink()
    with pytest.raises(FileNotFoundError, match="short.hnsw: missing from the index"):
        Index.load(broken)


def test_missing_faiss_names_the_extra(
    hnsw_index: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    fix = r"needs faiss, which is not installed; fix: pip install 'honed\[faiss\]'"
    with pytest.raises(ImportError, match=fix):
        import_faiss()
    with pytest.raises(ImportError, match=fix):
        Index.load(hnsw_index)
    with pytest.raises(ImportError, match=fix):
        Index.from_embeddings(np.ones((2, 4)), ["a", "b"], 2, out=tmp_path / "ix", ann="hnsw")
    assert not (tmp_path / "ix").exists()
    Index.from_embeddings(np.ones((2, 4)), ["a", "b"], 2)  # flat indexes need no faiss


# --------------------------------------------------------------------------- CLI


def test_cli_index_ann_and_search(
    tiny_model_path: Path, mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ix"
    argv = ["index", str(tiny_model_path), str(mini_beir), "--out", str(out)]
    assert main([*argv, "--shortlist-dim", "16", "--precision", "binary", "--ann", "hnsw"]) == 0
    printed = capsys.readouterr().out
    assert "short.npy, short.hnsw}" in printed and read_info(out).ann is AnnKind.HNSW
    assert main(["search", str(out), "vitamin D", "-k", "3", "--shortlist", "10"]) == 0
    assert capsys.readouterr().out.startswith(
        "top 3 of 40 (HNSW shortlist 10 at 16 dims float32, re-ranked at 32)"
    )
    assert main(["search", str(out), "vitamin D", "-k", "3", "--exact-shortlist"]) == 0
    assert capsys.readouterr().out.startswith(
        "top 3 of 40 (shortlist 40 at 16 dims binary, re-ranked at 32)"
    )
