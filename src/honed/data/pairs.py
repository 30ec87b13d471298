"""Loading and validating training-pair files (JSONL, CSV or TSV).

A pair file holds (query, positive) texts with optional hard negatives, for training without
a BEIR dataset. A bad line raises a :class:`~honed.data.beir.DataError` naming the file, the 1-based
line, what was expected and how to fix it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from honed.data.errors import (
    GZIP_MAGIC,
    DataError,
    Issues,
    bad_utf8,
    data_error,
    gzipped,
    show_value,
)
from honed.data.jsonl import read_jsonl

PAIR_EXTENSIONS = (".jsonl", ".json-lines", ".csv", ".tsv")
_NEGATIVE_KEY = re.compile(r"negative_(\d+)")


@dataclass(frozen=True)
class TrainPair:
    """A (query, positive) training pair with optional hard negatives."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "negatives", tuple(self.negatives))


def _missing_columns(path: Path, line: int, found: list[str]) -> DataError:
    hint = "; rename 'anchor' to 'query'" if "anchor" in found else ""
    if len(found) == 1 and any(sep in found[0] for sep in ";\t|,"):
        hint += "; separate the columns with ',' in a .csv file or with tabs in a .tsv file"
    return data_error(path, line, "missing or repeated column",
                  "one 'query' and one 'positive' (plus optional negative*)", f"{found}",
                  f"name the columns query, positive{hint}")


def _pair_text(path: Path, line: int, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise data_error(path, line, f"bad {key!r}", "non-empty text", show_value(value),
                     f"fill in {key!r} or remove this line")
    return value


def _json_pair(path: Path, line: int, obj: dict[str, Any]) -> TrainPair:
    """A pair from "query", "positive" and "negative" / "negatives" / "negative_1", ..."""
    if "query" not in obj or "positive" not in obj:
        raise _missing_columns(path, line, list(obj))
    many = obj.get("negatives", [])
    if not isinstance(many, list):
        raise data_error(path, line, "bad 'negatives'", "a list of strings", show_value(many),
                     'write "negatives": ["...", ...]')
    numbered = sorted((int(m[1]), key) for key in obj if (m := _NEGATIVE_KEY.fullmatch(key)))
    values = ([obj["negative"]] if "negative" in obj else []) + many
    negatives = [_pair_text(path, line, "negative", v)
                 for v in values + [obj[key] for _, key in numbered]]
    return TrainPair(_pair_text(path, line, "query", obj["query"]),
                     _pair_text(path, line, "positive", obj["positive"]), tuple(negatives))


def _csv_error(path: Path, line: int, delimiter: str, reason: str) -> DataError:
    """A record that the strict CSV reader rejects; ``line`` is where the record starts."""
    if reason == "unexpected end of data":
        reason = "a quote opened in this record is never closed"
    elif reason.startswith("field larger than field limit"):
        reason = (f"a cell longer than {csv.field_size_limit()} characters, usually an unclosed "
                  "quote")
    return data_error(path, line, "bad CSV record", f"cells separated by {delimiter!r}, each quoted "
                  "cell closed and its inner quotes doubled", reason,
                  'close the quote, double the quotes inside it (""), or write very long texts '
                  "to a .jsonl file")


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each record of a UTF-8 CSV/TSV file; a quoted cell may span lines.

    The reader is strict: the lenient default reads an unclosed quote as one cell that swallows
    the rest of the file, and a cell over ``csv.field_size_limit()`` is an error either way.
    """
    raw = path.read_bytes()
    if raw.startswith(GZIP_MAGIC):
        raise gzipped(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad_utf8(path, raw, exc.start) from None
    if b"\0" in raw:  # UTF-16 without a BOM decodes as UTF-8 full of NULs
        raise bad_utf8(path, raw, raw.index(b"\0"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _csv_error(path, start, delimiter, str(exc)) from None
        yield start, row
        start = reader.line_num + 1


def _csv_pairs(path: Path, delimiter: str) -> Iterator[TrainPair]:
    rows = _csv_rows(path, delimiter)
    columns = [c.strip().lower() for c in next(rows, (1, []))[1]]
    if columns.count("query") != 1 or columns.count("positive") != 1:
        raise _missing_columns(path, 1, columns)
    query, positive = columns.index("query"), columns.index("positive")
    negatives = [i for i, c in enumerate(columns) if c.startswith("negative")]
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise data_error(path, line, "wrong number of cells", f"{len(columns)} as in the header",
                         str(len(row)), "quote cells that contain the delimiter or a newline")
        # An empty negative cell is an absent negative: rows may have different numbers of them.
        yield TrainPair(_pair_text(path, line, "query", row[query]),
                        _pair_text(path, line, "positive", row[positive]),
                        tuple(row[i] for i in negatives if row[i].strip()))


def load_pairs(path: str | Path) -> tuple[TrainPair, ...]:
    """Load (query, positive, negatives) training pairs from JSONL, CSV or TSV.

    JSONL lines are objects with "query", "positive" and optionally "negative" (a string),
    "negatives" (a list) or "negative_1", "negative_2", ... CSV/TSV files start with a header
    row naming ``query``, ``positive`` and optional ``negative*`` columns.

    Raises:
        ValueError: the extension is not one of :data:`PAIR_EXTENSIONS`.
        FileNotFoundError: the file does not exist.
        DataError: a bad line, a missing column, or no pairs at all.

    Example:
        >>> pairs = load_pairs("pairs.jsonl")  # doctest: +SKIP
        >>> pairs[0].query, pairs[0].negatives  # doctest: +SKIP
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gz":
        raise ValueError(f"{path}: is gzip-compressed (expected a plain-text "
                         f"{', '.join(PAIR_EXTENSIONS[:-1])} or {PAIR_EXTENSIONS[-1]} file); fix: "
                         f"gunzip it (`gunzip -k {path}`) and pass {path.with_suffix('')}")
    if suffix not in PAIR_EXTENSIONS:
        raise ValueError(f"{path}: unknown pair-file extension {suffix!r} (expected one of "
                         f"{', '.join(PAIR_EXTENSIONS)}); fix: rename or convert the file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pair file not found; fix: check the path")
    if suffix in (".csv", ".tsv"):
        pairs = tuple(_csv_pairs(path, "," if suffix == ".csv" else "\t"))
    else:
        jsonl = read_jsonl(path, Issues(strict=True))
        pairs = tuple(_json_pair(path, line, obj) for line, obj in jsonl)
    if not pairs:
        raise data_error(path, None, "no training pairs", "at least one pair", "none",
                     "add rows with a query and a positive")
    return pairs
