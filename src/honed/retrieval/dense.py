"""Retrieval producing runs: exact dense search, Matryoshka truncation and a BM25 baseline.

Dense search is an exact dot product over embeddings that are already L2-normalised (so it is
cosine similarity), computed for a chunk of queries at a time: the peak memory is one
``(chunk_size, n_docs)`` score matrix plus its partition indices, about
``chunk_size * n_docs * 12`` bytes (4096 queries x 100k docs ~ 5 GB), never the full
``(n_queries, n_docs)`` matrix. Lower ``chunk_size`` for larger corpora.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from honed.types import Run

logger = logging.getLogger(__name__)


def _as_float(array: np.ndarray) -> np.ndarray:
    """The array itself when floating point (keeping its precision), else a float32 copy."""
    array = np.asarray(array)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float32)


def _same_float(query_emb: np.ndarray, doc_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays floating point and of ONE dtype (float32 when they differ).

    A float64 query block against float32 documents makes numpy copy the whole document matrix
    to float64 for every query chunk: quadratic memory traffic (seen: 259 s instead of ~10 s for
    1,000 queries x 1M documents).
    """
    query_emb, doc_emb = _as_float(query_emb), _as_float(doc_emb)
    if query_emb.dtype != doc_emb.dtype:
        query_emb, doc_emb = query_emb.astype(np.float32), doc_emb.astype(np.float32, copy=False)
    return query_emb, doc_emb


def _check_search_inputs(
    query_emb: np.ndarray, doc_emb: np.ndarray, k: int, chunk_size: int
) -> None:
    """Validate the arrays and integers shared by :func:`top_k` and :func:`search`."""
    for name, value in (("k", k), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, array in (("query_emb", query_emb), ("doc_emb", doc_emb)):
        if array.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (n, dim) array, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or infinite values: check the encoder output")
    if query_emb.shape[1] != doc_emb.shape[1]:
        raise ValueError(
            f"query_emb has dim {query_emb.shape[1]} but doc_emb has dim {doc_emb.shape[1]}: "
            "encode both with the same model (and truncate both to the same dim)"
        )
    if doc_emb.shape[0] == 0:
        raise ValueError("doc_emb has no rows: the corpus is empty")


MAX_SCORE_ELEMENTS = 1 << 25  # 33.5M scores per chunk: 134 MB float32 + 268 MB argpartition indices


def _chunked_top_k(
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    k: int,
    chunk_size: int,
    excluded: Sequence[np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(indices, scores)`` of the best ``k`` docs for each chunk of queries.

    ``excluded[i]`` holds doc indices that query ``i`` must not get; they score ``-inf`` and
    can still appear (with that score) when fewer than ``k`` docs remain.
    """
    k = min(k, doc_emb.shape[0])
    # Bound the score matrix whatever the corpus size: at most MAX_SCORE_ELEMENTS floats (plus
    # argpartition's int64 copy), i.e. ~400 MB, so a 1M-document corpus is scored 33 queries at a time.
    chunk_size = max(1, min(chunk_size, MAX_SCORE_ELEMENTS // doc_emb.shape[0]))
    for start in range(0, query_emb.shape[0], chunk_size):
        scores = query_emb[start : start + chunk_size] @ doc_emb.T  # (chunk, n_docs)
        if excluded is not None:
            for row, doc_indices in enumerate(excluded[start : start + chunk_size]):
                scores[row, doc_indices] = -np.inf
        # argpartition finds the k best in O(n_docs) per query; only those k are then sorted.
        # Partitioning at n_docs - k (rather than negating) avoids a second score matrix.
        n_docs = scores.shape[1]
        part = np.argpartition(scores, n_docs - k, axis=1)[:, n_docs - k :]  # (chunk, k)
        part_scores = np.take_along_axis(scores, part, axis=1)  # (chunk, k)
        # Best score first; equal scores in ascending doc order, so results are reproducible.
        order = np.lexsort((part, -part_scores), axis=1)  # (chunk, k)
        yield (
            np.take_along_axis(part, order, axis=1),
            np.take_along_axis(part_scores, order, axis=1),
        )


def top_k(
    query_emb: np.ndarray, doc_emb: np.ndarray, k: int, chunk_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` documents by dot product for every query, best first.

    Args:
        query_emb: ``(n_queries, dim)`` L2-normalised query embeddings.
        doc_emb: ``(n_docs, dim)`` L2-normalised document embeddings.
        k: documents per query; capped at ``n_docs``.
        chunk_size: queries scored at once (bounds memory, see the module docstring).

    Returns:
        ``(indices, scores)``, both ``(n_queries, min(k, n_docs))``: row ``i`` holds the doc
        row indices and scores for query ``i``, sorted by score descending.

    Raises:
        ValueError: bad shapes, non-finite values, an empty corpus, or ``k``/``chunk_size``
            not a positive integer.

    Example:
        >>> idx, sc = top_k(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), k=1)
        >>> idx.tolist(), sc.tolist()
        ([[0], [1]], [[1.0], [1.0]])
    """
    query_emb, doc_emb = _same_float(query_emb, doc_emb)
    _check_search_inputs(query_emb, doc_emb, k, chunk_size)
    chunks = list(_chunked_top_k(query_emb, doc_emb, k, chunk_size))
    width = min(k, doc_emb.shape[0])
    if not chunks:
        return np.empty((0, width), dtype=np.int64), np.empty((0, width), dtype=np.float32)
    indices = np.concatenate([c[0] for c in chunks])  # (n_queries, k)
    scores = np.concatenate([c[1] for c in chunks])  # (n_queries, k)
    return indices, scores


def _unique_ids(name: str, ids: Sequence[str], expected: int) -> dict[str, int]:
    """Map ids to their row, checking the count matches the embeddings and ids are unique."""
    if len(ids) != expected:
        raise ValueError(f"{name} has {len(ids)} ids but the embeddings have {expected} rows")
    position: dict[str, int] = {}
    for row, id_ in enumerate(ids):
        if position.setdefault(id_, row) != row:
            raise ValueError(f"{name} contains the id {id_!r} more than once: ids must be unique")
    return position


def search(
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    k: int = 100,
    chunk_size: int = 4096,
    exclude: Mapping[str, Collection[str]] | None = None,
) -> Run:
    """Exact dense retrieval: the top-``k`` documents of every query as a :data:`Run`.

    Args:
        query_emb: ``(n_queries, dim)`` L2-normalised query embeddings, rows aligned with
            ``query_ids``.
        doc_emb: ``(n_docs, dim)`` L2-normalised document embeddings, rows aligned with
            ``doc_ids``.
        query_ids: unique query ids.
        doc_ids: unique document ids.
        k: documents per query (fewer when the corpus, minus exclusions, is smaller).
        chunk_size: queries scored at once (bounds memory, see the module docstring).
        exclude: ``qid -> doc ids`` never returned for that query (e.g. the query's own
            document). Ids absent from ``query_ids``/``doc_ids`` are ignored: they cannot be
            returned anyway.

    Returns:
        ``qid -> docid -> score`` (python floats), each inner dict in rank order.

    Raises:
        ValueError: see :func:`top_k`; also ids whose count does not match the embeddings or
            that are not unique.

    Example:
        >>> emb = np.eye(2, dtype=np.float32)
        >>> search(emb, emb, ["q1", "q2"], ["d1", "d2"], k=1)
        {'q1': {'d1': 1.0}, 'q2': {'d2': 1.0}}
    """
    query_emb, doc_emb = _same_float(query_emb, doc_emb)
    _check_search_inputs(query_emb, doc_emb, k, chunk_size)
    _unique_ids("query_ids", query_ids, query_emb.shape[0])
    doc_row = _unique_ids("doc_ids", doc_ids, doc_emb.shape[0])
    excluded = None
    if exclude:
        excluded = [
            np.array([doc_row[d] for d in exclude.get(qid, ()) if d in doc_row], dtype=np.int64)
            for qid in query_ids
        ]
    run: Run = {}
    qids = iter(query_ids)
    for indices, scores in _chunked_top_k(query_emb, doc_emb, k, chunk_size, excluded):
        for row_indices, row_scores in zip(indices.tolist(), scores.tolist(), strict=True):
            run[next(qids)] = {
                doc_ids[i]: s for i, s in zip(row_indices, row_scores, strict=True) if s > -np.inf
            }
    return run


class BM25Retriever:
    """Lexical BM25 baseline, a thin wrapper over the ``bm25s`` library (Lucene variant).

    Text is lower-cased, split on word characters and stripped of ``stopwords`` by
    ``bm25s.tokenize``; tokens are stemmed with PyStemmer's English stemmer when it is installed
    (``pip install PyStemmer``) and left unstemmed otherwise. :attr:`stemmed` records which, so
    reports can say which BM25 they compare against.

    Args:
        doc_ids: unique document ids, aligned with ``texts``.
        texts: document texts (e.g. title + " " + text).
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation, in ``[0, 1]``.
        stopwords: a ``bm25s`` stopword language code (``"en"``) or ``None`` to keep all words.

    Raises:
        ValueError: mismatched or duplicate ids, an empty corpus, or ``k1``/``b`` out of range.

    Example:
        >>> bm25 = BM25Retriever(["d1", "d2"], ["cats purr", "dogs bark"])
        >>> bm25.search(["q1"], ["why do dogs bark"], k=5)
        {'q1': {'d2': 0.63...}}
    """

    def __init__(
        self,
        doc_ids: Sequence[str],
        texts: Sequence[str],
        k1: float = 1.2,
        b: float = 0.75,
        stopwords: str | None = "en",
    ) -> None:
        import bm25s

        if len(doc_ids) != len(texts):
            raise ValueError(f"doc_ids has {len(doc_ids)} ids but texts has {len(texts)} texts")
        if not doc_ids:
            raise ValueError("the corpus is empty: BM25Retriever needs at least one document")
        _unique_ids("doc_ids", doc_ids, len(texts))
        if k1 < 0:
            raise ValueError(f"k1 must be >= 0, got {k1}")
        if not 0 <= b <= 1:
            raise ValueError(f"b must be in [0, 1], got {b}")
        self.doc_ids: list[str] = list(doc_ids)
        self._stopwords = stopwords
        self._stemmer = _english_stemmer()
        self.stemmed: bool = self._stemmer is not None
        self._retriever = bm25s.BM25(k1=k1, b=b)
        self._retriever.index(self._tokenize(texts), show_progress=False)

    SETTINGS = "honed_bm25.json"
    """File of :meth:`save` beside bm25s's own: how queries must be tokenised to match."""

    def save(self, folder: str | Path) -> None:
        """Write the index to ``folder`` (bm25s's ``.npy`` + JSON files, and :attr:`SETTINGS`).

        Document ids are not written: the caller stores them (an index folder's ids.json) and
        passes them back to :meth:`load`.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._retriever.save(str(folder), show_progress=False)
        settings = {
            "stopwords": self._stopwords,
            "stemmed": self.stemmed,
            "count": len(self.doc_ids),
        }
        (folder / self.SETTINGS).write_text(json.dumps(settings) + "\n", encoding="utf-8")

    @classmethod
    def load(
        cls, folder: str | Path, doc_ids: Sequence[str], mmap: bool = True, fix: str = ""
    ) -> BM25Retriever:
        """Open an index written by :meth:`save`, its score arrays memory-mapped by default.

        Queries are tokenised as when it was built (same stopwords; stemmed only if it was).

        Args:
            folder: the folder :meth:`save` wrote.
            doc_ids: the document ids in the row order it was built with.
            mmap: memory-map the score arrays instead of reading them into memory.
            fix: the ``fix: ...`` clause appended to error messages.

        Raises:
            FileNotFoundError: no folder or a file of it is missing.
            ValueError: an unreadable file, or a document count other than ``len(doc_ids)``.
            ImportError: it was built stemmed and PyStemmer is not installed.
        """
        import bm25s

        folder = Path(folder)
        fix = fix or f"fix: build it again and save it to {folder}"
        file = folder / cls.SETTINGS
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: missing, so {folder} is not a saved BM25 index; {fix}"
            )
        try:
            settings = json.loads(file.read_text(encoding="utf-8"))
            stopwords, stemmed, count = (
                settings["stopwords"],
                settings["stemmed"],
                settings["count"],
            )
            retriever = bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False)
        except (ValueError, KeyError, TypeError, OSError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{folder}: unreadable BM25 index ({reason:.80}); {fix}") from None
        if count != len(doc_ids) or retriever.scores.get("num_docs") != count:
            raise ValueError(
                f"{folder}: BM25 index of {count} documents, but {len(doc_ids)} ids were given; {fix}"
            )
        stemmer = _english_stemmer() if stemmed else None
        if stemmed and stemmer is None:
            raise ImportError(
                f"{folder}: built with PyStemmer's English stemmer, which is not installed; "
                "fix: pip install PyStemmer"
            )
        loaded = cls.__new__(cls)
        loaded.doc_ids, loaded._stopwords, loaded._stemmer = list(doc_ids), stopwords, stemmer
        loaded.stemmed, loaded._retriever = bool(stemmed), retriever
        return loaded

    def _tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(
            list(texts),
            stopwords=self._stopwords,  # type: ignore[arg-type]  # bm25s accepts None
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )

    def search(self, query_ids: Sequence[str], queries: Sequence[str], k: int = 100) -> Run:
        """Top-``k`` documents per query by BM25 score.

        Documents that share no term with a query score 0 and are left out, as in Lucene, so a
        query may get fewer than ``k`` (or no) documents.

        Args:
            query_ids: unique query ids, aligned with ``queries``.
            queries: query texts.
            k: documents per query; capped at the corpus size.

        Returns:
            ``qid -> docid -> score`` (python floats), each inner dict in rank order.

        Raises:
            ValueError: mismatched or duplicate ids, or ``k`` not a positive integer.
        """
        if len(query_ids) != len(queries):
            raise ValueError(
                f"query_ids has {len(query_ids)} ids but queries has {len(queries)} texts"
            )
        _unique_ids("query_ids", query_ids, len(queries))
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not query_ids:
            return {}
        # bm25s refuses k larger than the corpus.
        k = min(k, len(self.doc_ids))
        indices, scores = self._retriever.retrieve(
            self._tokenize(queries), k=k, show_progress=False
        )  # (n_queries, k) each
        run: Run = {}
        for qid, row_indices, row_scores in zip(
            query_ids, indices.tolist(), scores.tolist(), strict=True
        ):
            run[qid] = {
                self.doc_ids[i]: s for i, s in zip(row_indices, row_scores, strict=True) if s > 0
            }
        return run


def _english_stemmer() -> object | None:
    """PyStemmer's English stemmer when installed; BM25 works unstemmed without it."""
    try:
        import Stemmer  # type: ignore[import-not-found]
    except ImportError:
        logger.info("PyStemmer is not installed: BM25 runs without stemming")
        return None
    return Stemmer.Stemmer("english")
