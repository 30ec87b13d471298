"""``DiagnoseConfig``: the settings of ``honed diagnose`` (no torch here: the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from honed.encoding.disk_cache import resolve_cache_dir
from honed.encoding.encoder import Precision

__all__ = ["DiagnoseConfig"]


@dataclass(frozen=True)
class DiagnoseConfig:
    """Settings of ``honed diagnose`` (validated on construction).

    ``user_queries`` is a file of real user queries (``--queries``: one per line, or JSONL with
    a ``"text"`` field) that every split is compared with.
    """

    data: str
    base_model: str = "all-MiniLM-L6-v2"
    probe: bool = False
    probe_rows: int = 128
    sample_words: int = 200_000
    seed: int = 42
    device: str = "auto"
    precision: Precision = Precision.AUTO
    trust_remote_code: bool = False
    # The on-disk embedding cache of the corpus encoding ("auto" = $HONED_CACHE_DIR or
    # ~/.cache/honed/embeddings, None = memory only): an interrupted diagnosis keeps its work.
    cache_dir: str | None = "auto"
    user_queries: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", Precision(self.precision))
        resolve_cache_dir(self.cache_dir)  # raises on ''
        for name in ("probe_rows", "sample_words"):
            if isinstance(getattr(self, name), bool) or getattr(self, name) < 1:
                raise ValueError(
                    f"{name}: expected a positive integer, got {getattr(self, name)!r}"
                )
