"""The two-stage index: build/load round trip, search, quantisation, file errors, CLI."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import honed.index.build
import honed.index.search
from honed.cli.main import main
from honed.data.corpus import read_corpus
from honed.encoding.dims import truncate
from honed.encoding.encoder import model_fingerprint
from honed.index.index import Index
from honed.index.quantize import (
    Quantization,
    bytes_per_doc,
    fast_scores,
    int8_scales,
    quantize,
    top_rows,
)
from honed.index.store import IndexInfo, read_info

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SD = 16  # shortlist dim used with the 32-dim tiny model


@pytest.fixture(scope="module")
def corpus(mini_beir: Path) -> tuple[list[str], list[str]]:
    return read_corpus(mini_beir)


@pytest.fixture(scope="module")
def built(
    tiny_model: SentenceTransformer,
    corpus: tuple[list[str], list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """One int8 index of the mini corpus, built once; tests copy it before breaking it."""
    out = tmp_path_factory.mktemp("index") / "ix"
    ids, texts = corpus
    Index.build(tiny_model, ids, texts, out, shortlist_dim=SD, precision="int8", batch_size=16)
    return out


@pytest.fixture
def broken(built: Path, tmp_path: Path) -> Path:
    """A writable copy of the built index."""
    return Path(shutil.copytree(built, tmp_path / "ix"))


def _queries(model: SentenceTransformer, n: int = 6) -> np.ndarray:
    texts = ["vitamin D and bones", "insulin", "malaria in Africa", "statins", "sleep", "fever"]
    return model.encode(texts[:n], normalize_embeddings=True)


def _ids(hits: list[list[tuple[str, float]]]) -> list[list[str]]:
    return [[doc for doc, _ in row] for row in hits]


# --------------------------------------------------------------------------- round trip


def test_build_load_round_trip(built: Path, tiny_model: SentenceTransformer, corpus: tuple) -> None:
    index = Index.load(built, tiny_model)
    assert sorted(p.name for p in built.iterdir()) == [
        "full.npy", "ids.json", "index.json", "short.npy", "short_scale.npy", "texts.jsonl",
    ]  # fmt: skip
    info = index.info
    assert isinstance(info, IndexInfo) and info == read_info(built)
    assert (info.dim, info.shortlist_dim, info.count) == (32, SD, 40)
    assert info.precision is Quantization.INT8 and info.normalized
    assert info.model_fingerprint == model_fingerprint(tiny_model)
    assert index.ids == corpus[0]
    # memory-mapped, read-only
    assert isinstance(index.full, np.memmap) and isinstance(index.short, np.memmap)
    assert not index.full.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(index.full, axis=1), 1.0, rtol=1e-5)
    expected = quantize(truncate(index.full, SD), "int8", index.scales)
    np.testing.assert_array_equal(index.short, expected)
    assert index.texts(["d02", "d40"]) == {"d02": corpus[1][1], "d40": corpus[1][39]}
    assert index.fast_tier_bytes == 40 * SD + 4 * SD


def test_full_vectors_are_the_model_embeddings(
    built: Path, tiny_model: SentenceTransformer, corpus: tuple
) -> None:
    index = Index.load(built)
    direct = tiny_model.encode(corpus[1][:5], normalize_embeddings=True)
    cos = np.sum(index.full[:5] * direct, axis=1)  # bf16 encoding where the CPU does it
    assert cos.min() > 0.999


@pytest.mark.parametrize("precision", ["float32", "int8", "binary"])
def test_two_stage_equals_exact_when_shortlist_is_the_corpus(
    tiny_model: SentenceTransformer, precision: str
) -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((300, 32)).astype(np.float32)
    index = Index.from_embeddings(emb, [f"d{i}" for i in range(300)], 8, precision)
    queries = rng.standard_normal((7, 32)).astype(np.float32)
    exact, two_stage = index.search_exact(queries, 10), index.search(queries, 10, shortlist=300)
    assert _ids(two_stage) == _ids(exact)
    np.testing.assert_allclose(
        [s for r in two_stage for _, s in r], [s for r in exact for _, s in r], rtol=1e-5
    )


def test_scores_are_exact_full_dim_cosines(built: Path, tiny_model: SentenceTransformer) -> None:
    index = Index.load(built)
    queries = _queries(tiny_model)
    for q, hits in zip(queries, index.search(queries, k=5, shortlist=12)):
        rows = [index.ids.index(doc) for doc, _ in hits]
        np.testing.assert_allclose([s for _, s in hits], index.full[rows] @ q, rtol=1e-5)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_in_memory_and_on_disk_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    emb, ids = rng.standard_normal((50, 24)), [f"d{i}" for i in range(50)]
    memory = Index.from_embeddings(emb, ids, 8, "binary")
    disk = Index.from_embeddings(emb, ids, 8, "binary", out=tmp_path / "ix", chunk_size=7)
    np.testing.assert_array_equal(memory.short, disk.short)
    queries = rng.standard_normal((4, 24))
    assert memory.search(queries, 5, 10) == disk.search(queries, 5, 10)
    assert disk.short.shape == (50, 1) and disk.fast_tier_bytes == 50


def test_chunked_search_matches_unchunked(
    built: Path, tiny_model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index.load(built)
    queries = _queries(tiny_model)
    whole = index.search(queries, 5, 10), index.search_exact(queries, 5)
    monkeypatch.setattr(honed.index.search, "MAX_SCORE_ELEMENTS", 50)  # one query per chunk
    chunked = index.search(queries, 5, 10), index.search_exact(queries, 5)
    for one, other in zip(chunked, whole):  # same ranking; BLAS may round a 1-row product apart
        assert _ids(one) == _ids(other)
        np.testing.assert_allclose(
            [s for r in one for _, s in r], [s for r in other for _, s in r], rtol=1e-5
        )


# --------------------------------------------------------------------------- quantisation


def test_bytes_per_doc() -> None:
    assert [bytes_per_doc(128, p) for p in Quantization] == [512, 128, 16]
    assert bytes_per_doc(12, "binary") == 2


def test_int8_scales_and_codes() -> None:
    short = np.array([[0.5, -0.2, 0.0], [-1.0, 0.1, 0.0]], dtype=np.float32)
    scales = int8_scales(short)
    np.testing.assert_allclose(scales, [1 / 127, 0.2 / 127, 1.0])  # zero column -> scale 1
    codes = quantize(short, "int8", scales)
    assert codes.dtype == np.int8
    np.testing.assert_array_equal(codes, [[64, -127, 0], [-127, 64, 0]])


def test_int8_scores_follow_the_float_dot_product() -> None:
    rng = np.random.default_rng(2)
    docs = truncate(rng.standard_normal((200, 16)), 16)
    query = truncate(rng.standard_normal((3, 16)), 16)
    scales = int8_scales(docs)
    scores = fast_scores(query, quantize(docs, "int8", scales), "int8", scales)
    assert scores.shape == (3, 200) and scores.dtype == np.int32
    for row, s in zip(query @ docs.T, scores):
        assert np.corrcoef(row, s)[0, 1] > 0.99


def test_binary_scores_are_sign_dot_products() -> None:
    rng = np.random.default_rng(3)
    for dim in (12, 16):  # a width that is and one that is not a multiple of 64 bits
        docs = rng.standard_normal((30, dim))
        query = rng.standard_normal((2, dim))
        codes = quantize(docs, "binary")
        assert codes.shape == (30, -(-dim // 8)) and codes.dtype == np.uint8
        expected = np.sign(query) @ np.sign(docs).T  # dim - 2 * hamming
        np.testing.assert_array_equal(fast_scores(query, codes, "binary"), expected)


def test_top_rows_orders_ties_by_row() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9, 0.2]])
    assert top_rows(scores, 3).tolist() == [[1, 3, 2]]
    assert top_rows(scores, 10).shape == (1, 5)


def test_quantize_errors() -> None:
    with pytest.raises(
        ValueError, match=r"precision: expected one of float32, int8, binary, got 'fp16'"
    ):
        quantize(np.ones((1, 2)), "fp16")
    with pytest.raises(ValueError, match="int8 quantisation needs the corpus scales"):
        quantize(np.ones((1, 2)), "int8")
    with pytest.raises(ValueError, match="int8 scoring needs the corpus scales"):
        fast_scores(np.ones((1, 2)), np.ones((1, 2), np.int8), "int8")


# --------------------------------------------------------------------------- argument errors


def test_model_mismatch_is_refused(built: Path, tiny_model_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    other = SentenceTransformer(str(tiny_model_path), device="cpu")
    next(iter(other.parameters())).data.add_(0.01)  # another model: other weights
    with pytest.raises(
        ValueError,
        match=r"fingerprint .* but the given model has fingerprint .*fix: search with --model",
    ):
        Index.load(built, other)


def test_shortlist_dim_larger_than_the_model(
    tiny_model: SentenceTransformer, corpus: tuple, tmp_path: Path
) -> None:
    with pytest.raises(
        ValueError, match="shortlist_dim 64 is larger than the model's embedding dim 32"
    ):
        Index.build(tiny_model, *corpus, tmp_path / "ix", shortlist_dim=64)
    with pytest.raises(ValueError, match="shortlist_dim must be a positive integer, got 0"):
        Index.from_embeddings(np.ones((2, 4)), ["a", "b"], shortlist_dim=0)
    assert not (tmp_path / "ix").exists()


def test_search_argument_errors(built: Path, tiny_model: SentenceTransformer) -> None:
    index = Index.load(built)
    queries = _queries(tiny_model, 1)
    with pytest.raises(ValueError, match=r"shortlist \(5\) must be >= k \(10\)"):
        index.search(queries, k=10, shortlist=5)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        index.search_exact(queries, k=0)
    with pytest.raises(ValueError, match=r"query_emb must be \(n_queries, 32\), got shape \(32,\)"):
        index.search(queries[0])
    with pytest.raises(ValueError, match="query_emb contains NaN"):
        index.search(np.full((1, 32), np.nan))


def test_from_embeddings_errors() -> None:
    with pytest.raises(ValueError, match="ids has 1 entries but there are 2 embedding rows"):
        Index.from_embeddings(np.ones((2, 4)), ["a"], 2)
    with pytest.raises(ValueError, match="ids contains duplicates"):
        Index.from_embeddings(np.ones((2, 4)), ["a", "a"], 2)
    with pytest.raises(ValueError, match="the corpus is empty"):
        Index.from_embeddings(np.ones((0, 4)), [], 2)
    with pytest.raises(ValueError, match="finite 2-D"):
        Index.from_embeddings(np.ones(4), ["a"], 2)
    with pytest.raises(ValueError, match="texts has 1 entries but ids has 2"):
        Index.from_embeddings(np.ones((2, 4)), ["a", "b"], 2, texts=["x"])
    with pytest.raises(FileNotFoundError, match="held in memory and has no texts.jsonl"):
        Index.from_embeddings(np.ones((2, 4)), ["a", "b"], 2).texts(["a"])


def test_read_corpus(mini_beir: Path, tmp_path: Path) -> None:
    ids, texts = read_corpus(mini_beir / "corpus.jsonl")
    assert len(ids) == 40 and texts[0].startswith("Vitamin D supplementation and hip fractures")
    with pytest.raises(
        FileNotFoundError, match=r"corpus.jsonl: does not exist .*fix: pass an existing corpus"
    ):
        read_corpus(tmp_path)


# --------------------------------------------------------------------------- broken folders


def test_missing_folder_and_index_json(broken: Path, tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match="index folder does not exist; fix: build it with honed index"
    ):
        Index.load(tmp_path / "nope")
    (broken / "index.json").unlink()
    with pytest.raises(FileNotFoundError, match="index.json: missing, so .* is not a honed index"):
        Index.load(broken)


def test_corrupted_index_json(broken: Path) -> None:
    (broken / "index.json").write_text("{not json")
    with pytest.raises(
        ValueError, match="index.json: unreadable or incomplete .*rebuild with honed index"
    ):
        Index.load(broken)
    (broken / "index.json").write_text(json.dumps({"dim": 32}))
    with pytest.raises(ValueError, match="index.json: unreadable or incomplete"):
        Index.load(broken)


def test_truncated_npy(broken: Path) -> None:
    data = (broken / "full.npy").read_bytes()
    (broken / "full.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        ValueError,
        match=r"full.npy: unreadable .npy, truncated or corrupted .*fix: rebuild with honed index .* --overwrite",
    ):
        Index.load(broken)


def test_corrupted_npy(broken: Path) -> None:
    (broken / "short.npy").write_bytes(b"this is not an npy file at all" * 10)
    with pytest.raises(ValueError, match="short.npy: unreadable .npy, truncated or corrupted"):
        Index.load(broken)


def test_npy_of_the_wrong_shape(broken: Path) -> None:
    np.save(broken / "full.npy", np.zeros((39, 32), dtype=np.float32))
    with pytest.raises(
        ValueError,
        match=r"full.npy: holds \(39, 32\) float32, but index.json expects \(40, 32\) float32",
    ):
        Index.load(broken)


def test_missing_npy_and_bad_ids(broken: Path) -> None:
    ids = json.loads((broken / "ids.json").read_text())
    (broken / "ids.json").write_text(json.dumps(ids[:-1]))
    with pytest.raises(ValueError, match="ids.json: expected a list of 40 ids, got 39 ids"):
        Index.load(broken)
    (broken / "ids.json").write_text(json.dumps(ids))
    (broken / "short_scale.npy").unlink()
    with pytest.raises(
        FileNotFoundError, match="short_scale.npy: missing from the index; fix: rebuild"
    ):
        Index.load(broken)


def test_truncated_texts(broken: Path) -> None:
    lines = (broken / "texts.jsonl").read_text().splitlines()
    (broken / "texts.jsonl").write_text("\n".join(lines[:10]) + "\n")
    index = Index.load(broken)
    assert index.texts(["d01"])  # rows before the cut still read
    with pytest.raises(ValueError, match="texts.jsonl: fewer lines than the index's 40 documents"):
        index.texts(["d40"])


# --------------------------------------------------------------------------- silently wrong files


def _drop_checksums(folder: Path) -> None:
    """Make ``folder`` look like an index built before checksums were recorded."""
    info = json.loads((folder / "index.json").read_text())
    info.pop("sha256")
    (folder / "index.json").write_text(json.dumps(info))


def _poke(file: Path, row: int, value: float) -> None:
    array = np.load(file, mmap_mode="r+")  # same size, same header: only the values change
    array[row, 0] = value
    array.flush()


def test_index_json_records_a_checksum_per_file(built: Path) -> None:
    recorded = json.loads((built / "index.json").read_text())["sha256"]
    assert sorted(recorded) == ["full.npy", "ids.json", "short.npy", "short_scale.npy", "texts.jsonl"]
    assert recorded["full.npy"] == hashlib.sha256((built / "full.npy").read_bytes()).hexdigest()


def test_a_nan_row_is_refused_not_silently_dropped_from_results(broken: Path) -> None:
    """#17: a NaN row in full.npy made that document vanish from every result list."""
    _poke(broken / "full.npy", 3, np.nan)
    with pytest.raises(
        ValueError,
        match=r"full.npy: its sha256 differs from the one recorded when the index was built .*fix: rebuild with honed index .* --overwrite",
    ):
        Index.load(broken)
    _drop_checksums(broken)  # an older index: the finite check still catches it
    with pytest.warns(UserWarning, match="records no checksums"):
        with pytest.raises(
            ValueError,
            match=r"full.npy: row 3 \(document 'd04'\) holds NaN or infinite values, so that document could never be found; fix: rebuild",
        ):
            Index.load(broken)


def test_nan_in_a_float32_fast_tier_and_inf_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    out = tmp_path / "ix"
    Index.from_embeddings(rng.standard_normal((50, 8)), [f"x{i}" for i in range(50)], 4, out=out)
    _poke(out / "short.npy", 49, np.inf)
    _drop_checksums(out)
    with pytest.warns(UserWarning, match="records no checksums"):
        with pytest.raises(ValueError, match=r"short.npy: row 49 \(document 'x49'\) holds NaN or infinite"):
            Index.load(out)


def test_a_duplicate_id_is_refused(broken: Path) -> None:
    """#17: a duplicate id in ids.json printed another document's text."""
    ids = json.loads((broken / "ids.json").read_text())
    ids[5] = ids[0]
    (broken / "ids.json").write_text(json.dumps(ids))
    with pytest.raises(ValueError, match=r"ids.json: its sha256 differs"):
        Index.load(broken)
    _drop_checksums(broken)
    with pytest.warns(UserWarning, match="records no checksums"):
        with pytest.raises(
            ValueError,
            match=r"ids.json: id 'd01' appears twice \(rows 0 and 5\), so a search would show one document's text for the other; fix: rebuild",
        ):
            Index.load(broken)


def test_an_index_without_checksums_loads_with_a_warning(broken: Path) -> None:
    _drop_checksums(broken)
    with pytest.warns(UserWarning, match=r"records no checksums \(built by an older honed\), so its files cannot be verified; fix: rebuild"):
        index = Index.load(broken)
    assert len(index) == 40
    Index.load(broken, verify=False)  # no check, no warning


def test_a_build_refuses_an_encoder_that_returns_nan(
    tiny_model: SentenceTransformer, corpus: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = honed.index.build.encode_texts

    def nan_for_d07(model: object, texts: list[str], **kwargs: object) -> np.ndarray:
        vectors = real(model, texts, **kwargs)  # type: ignore[arg-type]
        return np.where(np.array([t == corpus[1][6] for t in texts])[:, None], np.nan, vectors)

    monkeypatch.setattr(honed.index.build, "encode_texts", nan_for_d07)
    with pytest.raises(ValueError, match=r"the encoder returned a NaN or infinite vector for document 'd07'"):
        Index.build(tiny_model, *corpus, tmp_path / "ix", shortlist_dim=SD, batch_size=16)
    assert not (tmp_path / "ix").exists()


# --------------------------------------------------------------------------- atomic writes


def test_existing_out_is_refused(
    built: Path, tiny_model: SentenceTransformer, corpus: tuple, tmp_path: Path
) -> None:
    with pytest.raises(FileExistsError, match="exists; fix: pass --overwrite"):
        Index.build(tiny_model, *corpus, built, shortlist_dim=SD)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "keep.txt").write_text("user file")
    with pytest.raises(FileExistsError, match="not a honed index folder .* will not delete it"):
        Index.build(tiny_model, *corpus, user, shortlist_dim=SD, overwrite=True)
    assert (user / "keep.txt").read_text() == "user file"


def test_failed_build_leaves_no_half_index(
    tiny_model: SentenceTransformer,
    corpus: tuple,
    broken: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def fail_second_batch(model: object, texts: list[str], **kwargs: object) -> np.ndarray:
        calls.append(len(texts))
        if len(calls) == 2:
            raise RuntimeError("simulated crash mid-build")
        return tiny_model.encode(texts, normalize_embeddings=True)

    monkeypatch.setattr(honed.index.build, "encode_texts", fail_second_batch)
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="simulated crash"):
        Index.build(tiny_model, *corpus, fresh, shortlist_dim=SD, batch_size=16)
    assert not fresh.exists() and not list(tmp_path.glob(".fresh*"))
    before = read_info(broken)
    calls.clear()
    with pytest.raises(RuntimeError, match="simulated crash"):
        Index.build(tiny_model, *corpus, broken, shortlist_dim=8, batch_size=16, overwrite=True)
    assert read_info(broken) == before and Index.load(broken).info.shortlist_dim == SD
    assert not list(broken.parent.glob(".ix*"))


def test_overwrite_replaces_an_index(
    tiny_model: SentenceTransformer, corpus: tuple, broken: Path
) -> None:
    index = Index.build(
        tiny_model, *corpus, broken, shortlist_dim=8, precision="binary", overwrite=True
    )
    assert index.info.precision is Quantization.BINARY and index.short.shape == (40, 1)
    assert not (broken / "short_scale.npy").exists()


# --------------------------------------------------------------------------- CLI


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]) and "Traceback" not in err
    return lines[0]


def test_cli_index_and_search(
    tiny_model_path: Path, mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ix"
    args = [
        "index",
        str(tiny_model_path),
        str(mini_beir),
        "--out",
        str(out),
        "--shortlist-dim",
        "16",
    ]
    assert main([*args, "--precision", "binary"]) == 0
    printed = capsys.readouterr().out
    assert "indexed 40 documents at 32 dims" in printed and f"wrote {out}/" in printed
    assert f"next: honed search {out}" in printed
    assert read_info(out).model_name == str(tiny_model_path.resolve())
    assert main(["search", str(out), "vitamin D and bones", "-k", "3", "--shortlist", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("top 3 of 40 (shortlist 10 at 16 dims binary, re-ranked at 32)")
    assert [line.split()[0] for line in lines[1:]] == ["1.", "2.", "3."]
    assert main(args) == 1  # exists
    assert "--overwrite" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["index", "{model}", "{beir}", "--out", "{tmp}/a", "--shortlist-dim", "64"],
            "shortlist_dim 64 is larger than the model's embedding dim 32",
        ),
        (["index", "{model}", "{tmp}/none", "--out", "{tmp}/a"], "does not exist"),
        (["search", "{tmp}/none", "q"], "index folder does not exist"),
        (
            ["search", "{index}", "q", "--model", "{model}", "-k", "20", "--shortlist", "10"],
            r"shortlist \(10\) must be >= k \(20\)",
        ),
        (["search", "{index}", "q", "--model", "{tmp}/none"], "cannot load model"),
    ],
)
def test_cli_one_line_errors(
    argv: list[str],
    message: str,
    tiny_model_path: Path,
    mini_beir: Path,
    built: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = {"model": tiny_model_path, "beir": mini_beir, "tmp": tmp_path, "index": built}
    assert main([a.format(**values) for a in argv]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert re.search(message, line)


def test_cli_search_needs_a_model_when_the_recorded_one_is_gone(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = json.loads((broken / "index.json").read_text())
    (broken / "index.json").write_text(json.dumps({**info, "model_name": "/gone/model"}))
    assert main(["search", str(broken), "q"]) == 1
    assert (
        "records the model '/gone/model', which is not a folder here; fix: pass --model"
        in _one_error_line(capsys.readouterr().err)
    )
