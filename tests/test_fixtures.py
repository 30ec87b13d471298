"""The shared fixtures themselves: tiny model, mini BEIR dataset and the checked-in vocabulary."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_DIM, TINY_MAX_SEQ_LENGTH, VOCAB_PATH, build_tiny_model

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_qrels(path: Path) -> list[tuple[str, str, int]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["query-id", "corpus-id", "score"]
    return [(q, d, int(s)) for q, d, s in rows[1:]]


def corpus_texts(mini_beir: Path) -> list[str]:
    return [f"{doc['title']} {doc['text']}" for doc in read_jsonl(mini_beir / "corpus.jsonl")]


def all_texts(mini_beir: Path) -> list[str]:
    queries = [q["text"] for q in read_jsonl(mini_beir / "queries.jsonl")]
    return corpus_texts(mini_beir) + queries


# --- tiny model ---------------------------------------------------------------------------


def test_tiny_model_loads_with_plain_sentence_transformer(tiny_model_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    assert [type(module).__name__ for module in model] == ["Transformer", "Pooling"]
    assert model.get_sentence_embedding_dimension() == TINY_DIM
    assert model.max_seq_length == TINY_MAX_SEQ_LENGTH
    # Guards against a tokenizer silently built without the file (see build_tiny_model).
    assert len(model.tokenizer) == len(VOCAB_PATH.read_text(encoding="utf-8").splitlines())


def test_tiny_model_encodes_mini_corpus(tiny_model, mini_beir: Path) -> None:
    embeddings = tiny_model.encode(corpus_texts(mini_beir), batch_size=16)
    assert embeddings.shape == (40, TINY_DIM)
    assert np.isfinite(embeddings).all()
    # Random weights still give distinct vectors for distinct texts.
    assert len(np.unique(embeddings.round(5), axis=0)) == 40


def test_tiny_model_encoding_is_deterministic(tiny_model, mini_beir: Path) -> None:
    texts = corpus_texts(mini_beir)[:8]
    first = tiny_model.encode(texts, batch_size=8)
    assert np.array_equal(first, tiny_model.encode(texts, batch_size=8))
    # Mean pooling ignores padding, so the batch a text lands in does not change its vector.
    np.testing.assert_allclose(first, tiny_model.encode(texts, batch_size=1), atol=1e-5)


def test_build_tiny_model_is_seeded(tiny_model_path: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    rebuilt = build_tiny_model(tmp_path)
    expected = load_file(tiny_model_path / "model.safetensors")
    got = load_file(rebuilt / "model.safetensors")
    assert expected.keys() == got.keys()
    assert all(np.array_equal(expected[name], got[name]) for name in expected)


# --- mini BEIR ------------------------------------------------------------------------------


def test_mini_beir_has_beir_layout(mini_beir: Path) -> None:
    names = {p.relative_to(mini_beir).as_posix() for p in mini_beir.rglob("*") if p.is_file()}
    assert names == {"corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"}
    corpus = read_jsonl(mini_beir / "corpus.jsonl")
    queries = read_jsonl(mini_beir / "queries.jsonl")
    assert len(corpus) == 40 and all(doc.keys() == {"_id", "title", "text"} for doc in corpus)
    assert len(queries) == 24 and all(q.keys() == {"_id", "text"} for q in queries)
    assert len({doc["_id"] for doc in corpus}) == 40
    assert len({q["_id"] for q in queries}) == 24


def test_mini_beir_qrels_split_and_resolve(mini_beir: Path) -> None:
    doc_ids = {doc["_id"] for doc in read_jsonl(mini_beir / "corpus.jsonl")}
    query_ids = {q["_id"] for q in read_jsonl(mini_beir / "queries.jsonl")}
    train = read_qrels(mini_beir / "qrels" / "train.tsv")
    test = read_qrels(mini_beir / "qrels" / "test.tsv")
    train_queries, test_queries = {q for q, _, _ in train}, {q for q, _, _ in test}
    assert (len(train_queries), len(test_queries)) == (16, 8)
    assert not train_queries & test_queries
    assert train_queries | test_queries == query_ids
    assert {d for _, d, _ in train + test} <= doc_ids
    scores = [s for _, _, s in train + test]
    assert scores.count(0) == 1 and scores.count(2) == 6
    assert set(scores) == {0, 1, 2}
    # Every test query keeps at least one relevant document, so every metric is defined.
    assert {q for q, _, s in test if s > 0} == test_queries


def test_mini_beir_copy_is_independent(mini_beir: Path, mini_beir_copy: Path) -> None:
    assert mini_beir_copy != mini_beir
    (mini_beir_copy / "qrels" / "test.tsv").unlink()
    (mini_beir_copy / "corpus.jsonl").write_text("not json\n", encoding="utf-8")
    assert (mini_beir / "qrels" / "test.tsv").is_file()
    assert len(read_jsonl(mini_beir / "corpus.jsonl")) == 40


# --- vocabulary -----------------------------------------------------------------------------


def test_vocab_starts_with_special_tokens_and_has_no_duplicates() -> None:
    vocab = VOCAB_PATH.read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == SPECIAL_TOKENS
    assert len(vocab) == len(set(vocab))
    assert 300 <= len(vocab) <= 2000
    assert all(token and token == token.strip() for token in vocab)


def test_vocab_file_is_what_make_vocab_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_vocab", VOCAB_PATH.parent / "make_vocab.py")
    assert spec is not None and spec.loader is not None
    make_vocab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_vocab)
    assert make_vocab.build_vocab() == VOCAB_PATH.read_text(encoding="utf-8").splitlines(), (
        "tests/data/vocab.txt is stale: run `python tests/data/make_vocab.py`"
    )


def test_tokenizer_knows_mini_corpus_words(tiny_model, mini_beir: Path) -> None:
    tokenizer = tiny_model.tokenizer
    texts = all_texts(mini_beir)
    tokens = [token for text in texts for token in tokenizer.tokenize(text)]
    assert tokens.count(tokenizer.unk_token) / len(tokens) < 0.05
    # Stronger: every word (as BERT splits it) is one whole token, so the tiny model "sees"
    # words rather than letters. Split with the tokenizer's own normalizer and pre-tokenizer.
    backend = tokenizer.backend_tokenizer
    words = {
        word
        for text in texts
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(
            backend.normalizer.normalize_str(text)
        )
    }
    missing = sorted(words - tokenizer.get_vocab().keys())
    assert not missing, f"add {missing} to tests/data/make_vocab.py and rerun it"


@pytest.mark.parametrize("text", ["Vitamin D", "an unseen word: zygomorphic!"])
def test_tokenizer_never_needs_unk_for_ascii(tiny_model, text: str) -> None:
    assert tiny_model.tokenizer.unk_token not in tiny_model.tokenizer.tokenize(text)
