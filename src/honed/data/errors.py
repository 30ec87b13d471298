"""Errors about the user's files: one line naming the file, the line, the expected, the fix.

Every reader of ``data/`` (BEIR folders, pair files, the streaming corpus reader) raises or
collects :class:`DataError` through these helpers, so messages read alike whatever the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GZIP_MAGIC", "DataError", "Issues", "bad_utf8", "data_error", "gzipped", "show_value"]

GZIP_MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip file (RFC 1952)


class DataError(ValueError):
    """A bad input file.

    ``str(err)`` is one line: ``'<path>:<line>: <what> (expected ..., got ...); fix: <how>'``.

    Attributes:
        path: the offending file, or None.
        line: the 1-based line number, or None when the problem concerns the whole file.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        where = "" if path is None else f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(" ".join(f"{where}{message}".splitlines()))  # always one line



def data_error(path: Path, line: int | None, what: str, expected: str, got: str, fix: str) -> DataError:
    return DataError(f"{what} (expected {expected}, got {got}); fix: {fix}", path, line)



def show_value(value: Any, limit: int = 60) -> str:
    """A short one-line rendering of a bad value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."



def bad_utf8(path: Path, raw: bytes, position: int, first_line: int = 1) -> DataError:
    """Error for the bad byte ``raw[position]``, where ``raw`` starts at line ``first_line``.

    A NUL byte (valid UTF-8, but never in a text file) or a UTF-16 byte-order mark means the
    file is UTF-16, which needs another ``iconv`` source encoding than the usual latin-1.
    """
    line_start = raw.rfind(b"\n", 0, position) + 1
    line = first_line + raw.count(b"\n", 0, position)
    got = f"byte 0x{raw[position]:02x} at column {position - line_start + 1}"
    source = "latin1"
    if line == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        got, source = "a UTF-16 byte-order mark", "utf-16"
    elif raw[position] == 0:
        got, source = f"a NUL byte at column {position - line_start + 1}, as in UTF-16", "utf-16"
    return data_error(path, line, "text is not valid UTF-8", "UTF-8 text", got,
                  f"re-save the file as UTF-8 (e.g. `iconv -f {source} -t utf-8`)")



def gzipped(path: Path) -> DataError:
    """Error for a file that starts with the gzip magic bytes: its bytes are not text at all.

    Without this, the first byte that is not UTF-8 (0x8b) got the latin-1 advice of
    :func:`bad_utf8`, which would turn the compressed bytes into garbage text.
    """
    plain = path.name.removesuffix(".gz")
    how = (f"`gunzip -k {path}`" if path.suffix == ".gz"
           else f"`mv {path} {path}.gz && gunzip {path}.gz`")
    return data_error(path, None, "is gzip-compressed", "UTF-8 text",
                      "the gzip magic bytes 0x1f 0x8b", f"gunzip it ({how}, giving {plain})")


@dataclass
class Issues:
    """Where loaders send problems: raised at once (strict) or collected (check_dataset)."""

    strict: bool
    warnings: list[str] = field(default_factory=list)
    problems: list[DataError] = field(default_factory=list)

    def error(self, err: DataError) -> None:
        if self.strict:
            raise err
        self.problems.append(err)
