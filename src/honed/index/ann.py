"""An approximate shortlist for large corpora: an HNSW graph (faiss) over the fast tier's prefix.

The flat shortlist of :mod:`honed.index.search` scores every document at ``shortlist_dim`` dims, so a
query costs ``count * shortlist_dim`` multiply-adds: 128 M at a million documents and 128 dims
(tens of ms on one core), growing linearly. An HNSW graph visits a few thousand documents per
query instead, whatever the corpus size, at the price of memory and build time:

- **memory**: faiss's ``IndexHNSWFlat`` keeps its own float32 copy of the vectors
  (``4 * shortlist_dim`` B per document) plus ``2 * M`` int32 links on the bottom layer
  (``8 * M`` B) and ~``1 / M`` of that again above: at 128 dims and ``M = 32``, about 780 B per
  document, 0.8 GB per million, on top of the fast tier. The graph is built in memory;
  it is loaded memory-mapped where faiss supports it (``IO_FLAG_MMAP_IFC``, faiss >= 1.10).
- **recall**: the graph may miss a few of the true shortlist. The shortlist is then re-ranked
  by the exact full vectors, as in the flat search, so a miss costs a result only when a true
  top-``k`` document is missed, and the scores returned stay exact cosines.

The graph indexes the float32 first ``shortlist_dim`` dims, renormalised, with inner-product
metric (= cosine), whatever the fast tier's precision: ``short.npy`` is still written, so
``exact_shortlist=True`` can always fall back to the flat scan it was built for.

Example:
    >>> index = Index.build(model, ids, texts, "index", ann="hnsw")  # doctest: +SKIP
    >>> index.search(queries, k=10, shortlist=100)  # HNSW shortlist, exact re-rank  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from honed.index.checks import positive

__all__ = [
    "ANN_FILE",
    "AnnKind",
    "HnswConfig",
    "as_hnsw",
    "build_hnsw",
    "hnsw_shortlist",
    "import_faiss",
    "read_hnsw",
    "write_hnsw",
]

ANN_FILE = "short.hnsw"

# Graph degree. Each node keeps 2 * M neighbours on the bottom layer (8 * M bytes of links).
# The usual range is 16-64; 32 is the common middle for 64-256-dim vectors, with links (256 B)
# half the size of the 128-dim float32 vectors the graph stores anyway (512 B).
DEFAULT_M = 32
# Candidates kept while inserting a node; build time grows about linearly with it. faiss
# defaults to 40 (fast, lower recall), hnswlib to 200; 128 sits between. 200,000 x 128 dims took
# 152 s on one thread of a shared 2-core machine (bench/ann.py).
DEFAULT_EF_CONSTRUCTION = 128
# Candidates kept while searching. faiss uses max(efSearch, k) and the shortlist is k here, so
# efSearch is never below the shortlist. On bench/ann.py's 200,000 Gaussian vectors (a hard case
# for graphs) with a shortlist of 100, Recall@10 after the exact re-rank was 0.91 / 0.95 / 0.97
# at efSearch 100 / 200 / 400 for 0.75 / 0.92 / 1.44 ms per query (flat scan: 1.00 at 18 ms).
# Twice the shortlist is the default: most of the recall for about 1/20 of the flat latency.
EF_SEARCH_FACTOR = 2


class AnnKind(str, Enum):
    """Approximate shortlists honed can build."""

    HNSW = "hnsw"


@dataclass(frozen=True)
class HnswConfig:
    """How to build the HNSW graph.

    Attributes:
        m: graph degree (faiss ``M``); links cost ``8 * m`` bytes per document.
        ef_construction: candidates kept while inserting (faiss ``efConstruction``).
        threads: OpenMP threads for the build; None keeps faiss's default (all cores). Not part
            of the index: a multi-threaded build inserts in another order, with the same recall.
        batch_size: vectors added to the graph per step (one progress-bar update each).
    """

    m: int = DEFAULT_M
    ef_construction: int = DEFAULT_EF_CONSTRUCTION
    threads: int | None = field(default=None, compare=False)
    batch_size: int = field(default=50_000, compare=False)

    def __post_init__(self) -> None:
        positive("HnswConfig.m", self.m)
        positive("HnswConfig.ef_construction", self.ef_construction)
        positive("HnswConfig.batch_size", self.batch_size)
        if self.threads is not None:
            positive("HnswConfig.threads", self.threads)


def as_hnsw(ann: HnswConfig | AnnKind | str | None) -> HnswConfig | None:
    """``ann`` as an :class:`HnswConfig` (``"hnsw"`` = the defaults), or None for a flat index."""
    if ann is None or isinstance(ann, HnswConfig):
        return ann
    try:
        AnnKind(ann)
    except ValueError:
        allowed = ", ".join(repr(k.value) for k in AnnKind)
        raise ValueError(
            f"ann: expected one of {allowed} or None (flat), got {ann!r}; fix: --ann hnsw or leave it out"
        ) from None
    return HnswConfig()


def import_faiss() -> Any:
    """The faiss module; ImportError naming the extra to install when it is missing."""
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "an HNSW index needs faiss, which is not installed; fix: pip install 'honed[faiss]'"
        ) from None
    return faiss


@contextlib.contextmanager
def _threads(faiss: Any, threads: int | None) -> Iterator[None]:
    """Run with ``threads`` OpenMP threads, restoring faiss's setting after (it is global)."""
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def build_hnsw(
    chunks: Iterable[np.ndarray],
    dim: int,
    total: int,
    config: HnswConfig | None = None,
    show_progress_bar: bool = False,
) -> Any:
    """An inner-product HNSW graph of the L2-normalised float32 ``(n, dim)`` ``chunks``.

    Args:
        chunks: the vectors, in row order; each chunk is added as it comes (and split into
            ``config.batch_size`` rows), so only the graph and one chunk are in memory.
        dim: vector width (the index's shortlist dim).
        total: rows in all chunks, for the progress bar.
        config: graph settings (default :class:`HnswConfig`).
        show_progress_bar: show a progress bar over the documents.

    Returns:
        A ``faiss.IndexHNSWFlat``; row ``i`` of the input is label ``i``.
    """
    from tqdm.auto import tqdm

    faiss, config = import_faiss(), config or HnswConfig()
    index = faiss.IndexHNSWFlat(dim, config.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = config.ef_construction
    with (
        _threads(faiss, config.threads),
        tqdm(total=total, unit="doc", disable=not show_progress_bar, desc="hnsw") as bar,
    ):
        for chunk in chunks:
            for start in range(0, len(chunk), config.batch_size):
                part = np.ascontiguousarray(chunk[start : start + config.batch_size], np.float32)
                index.add(part)  # (b, dim)
                bar.update(len(part))
    return index


def write_hnsw(index: Any, path: Path) -> None:
    """Save the graph to ``path`` (faiss's own format)."""
    import_faiss().write_index(index, str(path))


def read_hnsw(path: Path, count: int, dim: int, hint: str) -> Any:
    """Load the graph at ``path``, memory-mapped where faiss can, and check it fits the index.

    Args:
        path: the ``short.hnsw`` file.
        count: documents the index holds (the graph must hold as many).
        dim: the index's shortlist dim (the graph's vector width).
        hint: the ``fix: ...`` sentence ending each error.

    Raises:
        ImportError: faiss is not installed.
        FileNotFoundError: ``path`` is missing.
        ValueError: the file is truncated, corrupted or of another index.
    """
    faiss = import_faiss()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing from the index (index.json says ann hnsw); {hint}"
        )
    # IO_FLAG_MMAP_IFC maps the vectors and links instead of reading them (faiss >= 1.10); an
    # older faiss, or a file it cannot map, is read whole. A file neither way reads is broken.
    flags = [getattr(faiss, "IO_FLAG_MMAP_IFC", None), 0]
    index, reason = None, ""
    for flag in (f for f in flags if f is not None):
        try:
            index = faiss.read_index(str(path), flag)
            break
        except (RuntimeError, MemoryError) as err:
            reason = _faiss_reason(err, path)
    if index is None:
        raise ValueError(
            f"{path}: unreadable HNSW graph, truncated or corrupted ({reason}); {hint}"
        )
    hnsw = getattr(index, "hnsw", None)
    if hnsw is None or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"{path}: not an inner-product HNSW graph; {hint}")
    if index.ntotal != count or index.d != dim:
        raise ValueError(
            f"{path}: holds {index.ntotal} vectors of {index.d} dims, but index.json expects "
            f"{count} of {dim}; the file is from another index; {hint}"
        )
    return index


def _faiss_reason(err: BaseException, path: Path) -> str:
    """What a faiss C++ error says, without its source location.

    faiss writes ``Error in <function> at <file>:<line>: Error: '<check>' failed: <reason>``.
    """
    text = " ".join(str(err).split())
    text = re.sub(r"^Error in .*? at \S+:\d+: ", "", text)  # the C++ function and location
    text = text.rsplit("failed: ", 1)[-1].removeprefix("Error: ")
    return text.replace(str(path), path.name)[:80] or type(err).__name__


def hnsw_shortlist(index: Any, queries: np.ndarray, shortlist: int, ef_search: int) -> np.ndarray:
    """Rows of the ``shortlist`` best documents per query by the graph: ``(n_q, shortlist)``.

    Args:
        index: a graph from :func:`build_hnsw` or :func:`read_hnsw`.
        queries: ``(n_q, dim)`` float32 L2-normalised queries at the graph's dim.
        shortlist: candidates per query.
        ef_search: candidates the search keeps (raised to ``shortlist`` when lower).

    Returns:
        int64 rows, best first; ``-1`` where the graph found fewer than ``shortlist``
        documents (only in a degenerate graph, e.g. a corpus smaller than ``shortlist``).
    """
    faiss = import_faiss()
    params = faiss.SearchParametersHNSW()
    params.efSearch = max(int(ef_search), int(shortlist))
    _, rows = index.search(np.ascontiguousarray(queries, np.float32), shortlist, params=params)
    return rows  # (n_q, shortlist)
