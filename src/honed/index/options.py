"""The settings of an index build, in one frozen dataclass validated when it is made.

:meth:`honed.index.index.Index.build` and its siblings take these as keyword arguments
(``Index.build(model, ids, texts, out, bm25=True, fusion=...)``) and refuse bad values before
any encoding starts; the build steps (:mod:`honed.index.build`, :mod:`honed.index.store`) then
read the one validated object.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from honed.encoding.encoder import Precision
from honed.index.ann import AnnKind, HnswConfig, as_hnsw
from honed.index.checks import positive
from honed.index.quantize import Quantization, as_quantization
from honed.retrieval.fusion import FusionConfig

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_SHORTLIST_DIM", "BuildOptions"]

# 128 of 384 dims: a third of the float32 bytes, and a Matryoshka dim honed trains at.
DEFAULT_SHORTLIST_DIM = 128
# Texts encoded and committed per step: 10,000 x 384 float32 = 15 MB of vectors in memory, and
# the most an interrupted build loses.
DEFAULT_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class BuildOptions:
    """How to build an index: its fast tier, what it holds beside the vectors, how it is written.

    Attributes:
        shortlist_dim: leading dims of the fast tier, ``1 <= shortlist_dim <= dim``.
        precision: fast-tier storage, float32, int8 or binary (a :class:`Quantization`).
        batch_size: documents encoded and committed per step (the resume granularity).
        encode_precision: the encoder's matmul precision ("auto", "fp32", "bf16"), recorded so
            that a resume uses the same.
        ann: ``"hnsw"`` (or an :class:`~honed.index.ann.HnswConfig`) to also build an HNSW graph
            of the shortlist (``short.hnsw``, needs ``honed[faiss]``); None: flat only.
        bm25: also store a BM25 index of the texts in ``out/bm25`` (for hybrid search).
        fusion: how hybrid search fuses, recorded in index.json (needs ``bm25``).
        model_name: recorded in index.json, for ``honed search`` to find the model (None: the
            model's absolute folder when it is given as a string, else "").
        overwrite: replace an existing index folder at the destination.
        resume: continue the interrupted build in ``OUT.partial``, if there is one; without it,
            an ``OUT.partial`` folder left by one is refused.
        show_progress_bar: progress bars over the documents (and the graph).

    Raises:
        ValueError: a bad shortlist_dim, precision, batch_size, encode_precision or ann, a
            ``fusion`` that is not a FusionConfig, or a ``fusion`` without ``bm25``.
    """

    shortlist_dim: int = DEFAULT_SHORTLIST_DIM
    precision: Quantization | str = Quantization.FLOAT32
    batch_size: int = DEFAULT_BATCH_SIZE
    encode_precision: Precision | str = Precision.AUTO.value
    ann: HnswConfig | AnnKind | str | None = None
    bm25: bool = False
    fusion: FusionConfig | None = None
    model_name: str | None = None
    overwrite: bool = False
    resume: bool = False
    show_progress_bar: bool = False

    def __post_init__(self) -> None:
        positive("shortlist_dim", self.shortlist_dim)
        positive("batch_size", self.batch_size)
        coerced = {
            "precision": as_quantization(self.precision),
            "encode_precision": Precision(self.encode_precision).value,
            "ann": as_hnsw(self.ann),
        }
        for name, value in coerced.items():
            object.__setattr__(self, name, value)
        if self.fusion is not None and not isinstance(self.fusion, FusionConfig):
            raise ValueError(
                f"fusion: expected a honed.retrieval.fusion.FusionConfig, got {type(self.fusion).__name__}"
            )
        if self.fusion is not None and not self.bm25:
            raise ValueError("fusion needs a BM25 index to fuse with; fix: pass bm25=True (--bm25)")

    @property
    def hnsw(self) -> HnswConfig | None:
        """The graph settings (``ann`` coerced), or None for a flat index."""
        return self.ann if isinstance(self.ann, HnswConfig) else None

    @classmethod
    def of(
        cls, caller: str, settings: Mapping[str, Any], refused: Collection[str] = ()
    ) -> BuildOptions:
        """The options that the keyword arguments ``settings`` of ``caller`` name.

        ``refused`` are fields ``caller`` has no use for: naming one is a TypeError, as an
        unknown keyword is, rather than a setting silently ignored.

        Example:
            >>> BuildOptions.of("Index.build", {"bm25": True}).bm25
            True
        """
        known = {f.name for f in fields(cls)} - set(refused)
        for name in settings:
            if name not in known:
                raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
        return cls(**settings)
