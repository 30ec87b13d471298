"""Training rows (a query, one positive, its mined negatives) and their JSON-lines file, ``mined.jsonl``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from honed.files import write_jsonl

__all__ = ["MinedRow", "read_mined", "write_mined"]


@dataclass(frozen=True)
class MinedRow:
    """One training row: a query, one positive and its mined negatives (ids, texts, scores)."""

    query_id: str
    query: str
    positive_id: str
    positive: str
    positive_score: float
    negative_ids: tuple[str, ...]
    negatives: tuple[str, ...]
    negative_scores: tuple[float, ...]


def write_mined(rows: Sequence[MinedRow], path: str | Path) -> None:
    """Write rows as JSON lines, atomically; keys in a fixed order, so reruns are byte-identical."""
    write_jsonl(path, (asdict(row) for row in rows))


def read_mined(path: str | Path) -> tuple[MinedRow, ...]:
    """Read rows written by :func:`write_mined`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not a mined row (names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; fix: run `honed mine` first, it writes mined.jsonl"
        )
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                obj["negative_ids"] = tuple(obj["negative_ids"])
                obj["negatives"] = tuple(obj["negatives"])
                obj["negative_scores"] = tuple(obj["negative_scores"])
                rows.append(MinedRow(**obj))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}:{line_no}: not a mined row ({type(err).__name__}: {err}); "
                    "fix: regenerate the file with `honed mine`"
                ) from err
    return tuple(rows)
