"""BM25 (bm25s): the lexical baseline every dense model must beat, and the other half of hybrid.

Documents are tokenised with English stopwords and, when PyStemmer is installed, the Snowball
English stemmer; the index saves to a folder of ``.npy`` + JSON and loads memory-mapped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from honed.retrieval.dense import unique_ids
from honed.types import Run

__all__ = ["BM25Retriever"]

logger = logging.getLogger(__name__)


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
        unique_ids("doc_ids", doc_ids, len(texts))
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
        unique_ids("query_ids", query_ids, len(queries))
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
