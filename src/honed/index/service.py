"""The search service behind ``honed serve``: one loaded index, its model, and the checks of a request.

No web framework here (that is :mod:`honed.index.serve`): :class:`SearchService` turns the raw
query parameters of ``GET /search`` into a search of the index and a JSON-ready dict, and
refuses a bad request with :class:`BadRequest` (the server answers 400 with its message), so a
RAG application gets the same answers from Python as over HTTP.

With a base model to compare (``--compare``), the service also encodes the index's texts with
it once at start (through the on-disk embedding cache, so a restart reads them back) and
searches them exactly: the search page then shows base and tuned side by side.

Example:
    >>> service = SearchService.load(ServeConfig("runs/index"))  # doctest: +SKIP
    >>> service.search("vitamin D and bone fractures", k="5")["results"][0]["id"]  # doctest: +SKIP
    'd01'
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.encoding.disk_cache import default_cache_dir
from honed.encoding.encoder import EmbeddingCache, encode_texts, load_model, resolve_model_name
from honed.index.index import Index
from honed.index.search import DEFAULT_SHORTLIST
from honed.index.store import read_info
from honed.retrieval.dense import top_k

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MODES", "BadRequest", "SearchService", "ServeConfig"]

MODES = ("dense", "hybrid")
MAX_QUERY_CHARS = 2000  # a query, not a document: longer input is a client bug


class BadRequest(ValueError):
    """A request the API refuses (HTTP 400); the message says what was expected and the fix."""


@dataclass(frozen=True)
class ServeConfig:
    """What ``honed serve`` loads and where it listens.

    Attributes:
        index: the index folder (``honed index ... --out``).
        model: the model that built the index (None: the one index.json records).
        compare: a base model (folder or hub id) to show beside the tuned one; None: off.
        device: ``auto``, ``cpu``, ``cuda``, ...
        shortlist: dense candidates re-ranked at full dim (at least ``k``).
        max_k: the largest ``k`` a request may ask for.
        host: address to bind; 127.0.0.1 keeps the server off the network.
        port: TCP port (0: any free port).
    """

    index: str | Path
    model: str | None = None
    compare: str | None = None
    device: str = "auto"
    shortlist: int = DEFAULT_SHORTLIST
    max_k: int = 100
    host: str = "127.0.0.1"
    port: int = 8000

    def __post_init__(self) -> None:
        if self.max_k < 1:
            raise ValueError(f"max_k: expected a positive integer, got {self.max_k}")
        if self.shortlist < self.max_k:
            raise ValueError(
                f"shortlist: expected at least max_k ({self.max_k}), got {self.shortlist}; "
                "fix: raise --shortlist (the re-rank returns only shortlisted documents)"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: expected 0-65535, got {self.port}")


class TextStore:
    """Row -> text of the index's ``texts.jsonl``, by byte offset: one seek per result."""

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        offsets = [0]
        with path.open("rb") as handle:
            for line in handle:
                offsets.append(offsets[-1] + len(line))
        if len(offsets) - 1 < count:
            raise ValueError(
                f"{path}: {len(offsets) - 1} lines for an index of {count} documents; fix: "
                "rebuild the index with honed index"
            )
        self.offsets, self.count = offsets, count

    def get(self, rows: list[int]) -> list[str]:
        with self.path.open("rb") as handle:
            out = []
            for row in rows:
                handle.seek(self.offsets[row])
                out.append(str(json.loads(handle.readline())))
            return out

    def all(self) -> list[str]:
        with self.path.open(encoding="utf-8") as handle:
            return [str(json.loads(line)) for line, _ in zip(handle, range(self.count))]


@dataclass(frozen=True)
class BaseSide:
    """The base model of ``--compare`` and its exact encoding of the index's texts."""

    name: str
    model: SentenceTransformer
    doc_emb: np.ndarray  # (count, base dim), L2-normalised


def _param_k(value: Any, max_k: int) -> int:
    text = "10" if value is None or value == "" else str(value)
    try:
        k = int(text)
    except ValueError:
        raise BadRequest(f"k: expected an integer from 1 to {max_k}, got {text!r}") from None
    if not 1 <= k <= max_k:
        raise BadRequest(f"k: expected an integer from 1 to {max_k}, got {k}; fix: e.g. k=10")
    return k


def _param_flag(name: str, value: Any) -> bool:
    text = str(value or "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise BadRequest(f"{name}: expected true or false, got {value!r}")


class SearchService:
    """An index, the model that embeds queries for it, and optionally a base model to compare."""

    def __init__(
        self,
        index: Index,
        model: SentenceTransformer,
        config: ServeConfig,
        texts: TextStore | None,
        base: BaseSide | None = None,
    ) -> None:
        self.index, self.model, self.config, self.texts, self.base = (
            index,
            model,
            config,
            texts,
            base,
        )
        self.model_name = config.model or index.info.model_name
        self._row_of = {d: i for i, d in enumerate(index.ids)}
        # One search at a time: a tokenizer shared by threads can fail ("Already borrowed"), and
        # on a CPU the forward pass already uses every core.
        self._lock = threading.Lock()
        try:
            index.hybrid_parts()
            self.hybrid, self.hybrid_error = True, ""
        except (FileNotFoundError, ValueError) as err:
            self.hybrid, self.hybrid_error = False, str(err)

    @classmethod
    def load(cls, config: ServeConfig) -> SearchService:
        """Open the index, load its model (and the base model of ``compare``), check they match.

        Raises:
            FileNotFoundError: no index folder, or no texts.jsonl for ``compare``.
            ValueError: the model is not the one that built the index, or a file is broken.
        """
        folder = Path(config.index)
        info = read_info(folder)
        name = config.model or info.model_name
        if not name:
            raise ValueError(f"{folder}/index.json records no model; fix: pass --model MODEL")
        resolved = resolve_model_name(name)
        if not config.model and not Path(resolved).exists():
            raise ValueError(
                f"{folder}/index.json records the model {name!r}, which is not a folder here; "
                "fix: pass --model MODEL (the model that built the index)"
            )
        model = load_model(resolved, config.device)
        index = Index.load(folder, model)  # refuses a model that did not build the index
        texts = (
            TextStore(folder / "texts.jsonl", info.count)
            if (folder / "texts.jsonl").is_file()
            else None
        )
        base = None
        if config.compare:
            if texts is None:
                raise FileNotFoundError(
                    f"{folder}/texts.jsonl: missing, and --compare must encode the documents "
                    "with the base model; fix: rebuild the index with honed index (it keeps texts)"
                )
            base_model = load_model(resolve_model_name(config.compare), config.device)
            cache = EmbeddingCache(directory=default_cache_dir())  # a restart reads them back
            base = BaseSide(config.compare, base_model, cache.encode(base_model, texts.all()))
        return cls(index, model, config, texts, base)

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers: the index, its model and what the server can do."""
        info = self.index.info
        return {
            "status": "ok",
            "index": str(self.config.index),
            "documents": info.count,
            "dim": info.dim,
            "model": self.model_name,
            "modes": ["dense", "hybrid"] if self.hybrid else ["dense"],
            "compare": self.base.name if self.base else None,
            "max_k": self.config.max_k,
        }

    def _check(self, q: Any, mode: Any, compare: bool) -> tuple[str, str]:
        query = " ".join(str(q or "").split())
        if not query:
            raise BadRequest("q: expected a non-empty query; fix: /search?q=your+question&k=10")
        if len(query) > MAX_QUERY_CHARS:
            raise BadRequest(f"q: expected at most {MAX_QUERY_CHARS} characters, got {len(query)}")
        mode = str(mode or "dense")
        if mode not in MODES:
            raise BadRequest(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if mode == "hybrid" and not self.hybrid:
            raise BadRequest(f"mode=hybrid: this index cannot serve it ({self.hybrid_error})")
        if compare and self.base is None:
            raise BadRequest(
                "compare: this server has no base model; fix: start it with --compare BASE_MODEL"
            )
        return query, mode

    def _results(self, hits: list[tuple[str, float]]) -> list[dict[str, Any]]:
        rows = [self._row_of[d] for d, _ in hits]
        texts: list[str | None] = list(self.texts.get(rows)) if self.texts else [None] * len(hits)
        return [
            {"rank": i, "id": d, "score": round(float(s), 6), "text": t}
            for i, ((d, s), t) in enumerate(zip(hits, texts), start=1)
        ]

    def search(
        self, q: Any, k: Any = None, mode: Any = None, compare: Any = None
    ) -> dict[str, Any]:
        """Answer ``GET /search?q=...&k=10&mode=dense|hybrid&compare=true`` (raw parameter values).

        Raises:
            BadRequest: empty or too long ``q``, ``k`` not in ``1..max_k``, an unknown ``mode``,
                ``hybrid`` on an index without BM25, ``compare`` without a base model.
        """
        k, with_base = _param_k(k, self.config.max_k), _param_flag("compare", compare)
        query, mode = self._check(q, mode, with_base)
        start = time.perf_counter()
        shortlist = max(self.config.shortlist, k)
        with self._lock:
            emb = encode_texts(self.model, [query])  # (1, dim)
            if mode == "hybrid":
                hits = self.index.search_hybrid([query], emb, k=k, shortlist=shortlist)[0]
            else:
                hits = self.index.search(emb, k=k, shortlist=shortlist)[0]
            base = self.base if with_base else None
            base_hits = _base_hits(base, self.index.ids, query, k) if base else None
        answer: dict[str, Any] = {
            "query": query,
            "k": k,
            "mode": mode,
            "model": self.model_name,
            "results": self._results(hits),
        }
        if base is not None and base_hits is not None:
            answer["compare"] = {
                "model": base.name,
                "mode": "dense",
                "results": self._results(base_hits),
            }
        answer["took_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return answer


def _base_hits(base: BaseSide, ids: list[str], query: str, k: int) -> list[tuple[str, float]]:
    """The base model's exact top ``k`` over the index's texts."""
    emb = encode_texts(base.model, [query])  # (1, base dim)
    rows, scores = top_k(emb, base.doc_emb, k)  # (1, k) each
    return [(ids[r], float(s)) for r, s in zip(rows[0].tolist(), scores[0].tolist())]
