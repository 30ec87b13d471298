"""The BM25 side table of a honed index in PostgreSQL: bm25s's scores as postings.

PostgreSQL's own full-text search is not used for the hybrid: ``ts_rank`` is not BM25 (no IDF,
another length normalisation), so its scores would not reproduce the fusion chosen on dev.
Instead bm25s's precomputed sparse matrix (``scores``: CSC by term, ``data`` = the BM25 score of
a term in a document) is copied row for row into ``{table}_bm25 (term_id, doc_row, score)``
with the vocabulary in ``{table}_vocab (token, term_id)``. A query is tokenised in Python exactly
as :class:`honed.retrieval.dense.BM25Retriever` does, and ``SUM(score)`` over its tokens (a repeated
token counts again, as in bm25s) is bm25s's score of each document.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.index.hybrid import BM25_DIR
from honed.index.postgres.tables import (
    COPY_SIGNATURE,
    COPY_TRAILER,
    TableNames,
    copy_chunks,
    sql_text,
)
from honed.index.store import rebuild_hint
from honed.retrieval.bm25 import BM25Retriever

if TYPE_CHECKING:
    from honed.index.index import Index

__all__ = ["Bm25Source", "bm25_tokenize", "folder_bm25", "write_bm25"]


def posting_chunks(
    term_ids: np.ndarray, doc_rows: np.ndarray, scores: np.ndarray, batch_size: int
) -> Iterator[bytes]:
    """Binary COPY data of ``(term_id, doc_row, score)`` rows, built by numpy per batch."""
    layout = np.dtype(
        [
            ("nfields", ">i2"),
            ("term_len", ">i4"),
            ("term", ">i4"),
            ("doc_len", ">i4"),
            ("doc", ">i4"),
            ("score_len", ">i4"),
            ("score", ">f4"),
        ]
    )
    yield COPY_SIGNATURE
    for start in range(0, len(scores), batch_size):
        end = start + batch_size
        rows = np.zeros(len(scores[start:end]), dtype=layout)
        rows["nfields"], rows["term_len"], rows["doc_len"], rows["score_len"] = 3, 4, 4, 4
        rows["term"], rows["doc"], rows["score"] = (
            term_ids[start:end],
            doc_rows[start:end],
            scores[start:end],
        )
        yield rows.tobytes()
    yield COPY_TRAILER


def bm25_tokenize(texts: Sequence[str], stopwords: str | None, stemmed: bool) -> list[list[str]]:
    """Tokens of ``texts`` exactly as :class:`honed.retrieval.dense.BM25Retriever` makes them.

    Raises:
        ImportError: the index was built with PyStemmer stemming and PyStemmer is missing.
    """
    import bm25s

    stemmer = None
    if stemmed:
        try:
            import Stemmer  # type: ignore[import-not-found]
        except ImportError:
            raise ImportError(
                "this index's BM25 side table was built with PyStemmer's English stemmer; "
                "fix: pip install PyStemmer (queries must be stemmed as the documents were)"
            ) from None
        stemmer = Stemmer.Stemmer("english")
    return bm25s.tokenize(  # type: ignore[no-any-return]
        list(texts),
        stopwords=stopwords,  # type: ignore[arg-type]  # bm25s accepts None
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
    )


class Bm25Source:
    """What the side tables need from a bm25s index: postings in index row order, vocabulary."""

    def __init__(self, model: Any, doc_ids: Sequence[str], settings: dict[str, Any]) -> None:
        self.model = model  # bm25s.BM25
        self.doc_ids = list(doc_ids)
        self.settings = settings

    @classmethod
    def from_retriever(cls, retriever: BM25Retriever) -> Bm25Source:
        """The bm25s index inside ``retriever``, with the tokenizer settings queries need."""
        model = retriever._retriever
        settings = {
            "k1": float(model.k1),
            "b": float(model.b),
            "method": str(model.method),
            "idf_method": str(getattr(model, "idf_method", model.method)),
            "stopwords": retriever._stopwords,
            "stemmed": bool(retriever.stemmed),
        }
        return cls(model, retriever.doc_ids, settings)

    def postings(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(term_ids, doc_rows, scores, n_terms)``: bm25s's sparse scores, rows of ``ids``."""
        scores = self.model.scores
        if getattr(self.model, "nonoccurrence_array", None) is not None:
            raise ValueError(
                f"BM25 method {self.settings['method']!r} adds a score to documents without the "
                "term, which a side table of postings cannot hold; fix: use the default "
                "'lucene' BM25"
            )
        row_of = {doc_id: row for row, doc_id in enumerate(ids)}
        missing = [d for d in self.doc_ids if d not in row_of]
        if missing or len(self.doc_ids) != len(ids):
            raise ValueError(
                f"the BM25 index covers {len(self.doc_ids)} documents ({len(missing)} not in the "
                f"dense index of {len(ids)}): it was built from another corpus; fix: rebuild the "
                "index folder with honed index"
            )
        position_to_row = np.array([row_of[d] for d in self.doc_ids], dtype=np.int64)
        indptr = np.asarray(scores["indptr"], dtype=np.int64)  # (n_terms + 1,), CSC by term
        n_terms = len(indptr) - 1
        term_ids = np.repeat(np.arange(n_terms, dtype=np.int64), np.diff(indptr))  # (nnz,)
        doc_rows = position_to_row[np.asarray(scores["indices"], dtype=np.int64)]  # (nnz,)
        return term_ids, doc_rows, np.asarray(scores["data"], dtype=np.float32), n_terms

    def vocabulary(self, n_terms: int) -> Iterator[tuple[str, int]]:
        """``(token, term_id)`` of every term that has postings."""
        for token, term_id in self.model.vocab_dict.items():
            if 0 <= int(term_id) < n_terms:  # bm25s adds "" past the last scored term
                yield str(token), int(term_id)


def folder_bm25(index: Index) -> Bm25Source | None:
    """The BM25 index saved in the index folder's ``bm25/`` (``Index.build(..., bm25=True)``)."""
    if index.path is None or not (index.path / BM25_DIR).is_dir():
        return None
    fix = f"fix: rebuild the index folder ({rebuild_hint(index.path, index.info).removeprefix('fix: ')})"
    return Bm25Source.from_retriever(BM25Retriever.load(index.path / BM25_DIR, index.ids, fix=fix))


def write_bm25(
    cur: Any, index: Index, source: Bm25Source, stage: TableNames, batch_size: int
) -> dict[str, Any]:
    """Create and fill the staged postings and vocabulary tables; returns the BM25 settings."""
    term_ids, doc_rows, scores, n_terms = source.postings(index.ids)
    cur.execute(
        sql_text(
            "CREATE TABLE {} (term_id int4 NOT NULL, doc_row int4 NOT NULL, score float4 NOT NULL)"
        ).format(stage.bm25)
    )
    copy_chunks(
        cur,
        sql_text("COPY {} (term_id, doc_row, score) FROM STDIN (FORMAT BINARY)").format(stage.bm25),
        posting_chunks(term_ids, doc_rows, scores, batch_size),
    )
    cur.execute(
        sql_text("CREATE INDEX {} ON {} (term_id)").format(stage.index("bm25_term"), stage.bm25)
    )
    cur.execute(
        sql_text("CREATE TABLE {} (token text NOT NULL, term_id int4 NOT NULL)").format(stage.vocab)
    )
    with cur.copy(sql_text("COPY {} (token, term_id) FROM STDIN").format(stage.vocab)) as copy:
        for token, term_id in source.vocabulary(n_terms):
            copy.write_row((token, term_id))
    cur.execute(
        sql_text("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (token)").format(
            stage.vocab, stage.index("vocab_pkey")
        )
    )
    cur.execute(sql_text("ANALYZE {}").format(stage.bm25))
    cur.execute(sql_text("ANALYZE {}").format(stage.vocab))
    return {**source.settings, "terms": n_terms, "postings": int(len(scores))}
