"""Reading JSON-lines files line by line, with the line number of every problem.

Shared by the BEIR reader (corpus and queries), the pair-file reader and the streaming corpus
reader: a bad encoding, a broken line or a missing id gets the same one-line message everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from honed.data.errors import GZIP_MAGIC, Issues, bad_utf8, data_error, gzipped, show_value

__all__ = ["all_blank", "get_id", "get_text", "json_problem", "read_entries", "read_jsonl", "read_lines"]


def read_lines(path: Path, issues: Issues) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) of a UTF-8 file; a BOM and CRLF are accepted.

    Decoded line by line so that a bad byte is reported with its line number. A gzip file is
    reported once, as such, and not read further: its bytes are not lines of text.
    """
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(GZIP_MAGIC):
                issues.error(gzipped(path))
                return
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                issues.error(bad_utf8(path, raw, exc.start, line_no))
                continue
            if b"\0" in raw:  # UTF-16 without a BOM decodes as UTF-8 full of NULs
                issues.error(bad_utf8(path, raw, raw.index(b"\0"), line_no))
                continue
            yield line_no, text.rstrip("\r\n")



def json_problem(exc: ValueError | RecursionError) -> str:
    """What ``json.loads`` found wrong, for the "got" part of an error message."""
    if isinstance(exc, json.JSONDecodeError):
        # "Unterminated string starting at" would otherwise read "... at at column 5"
        return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
    if isinstance(exc, RecursionError):  # e.g. "[[[[..." thousands deep
        return "nesting too deep"
    return show_value(str(exc), 80)  # e.g. an integer of more than 4300 digits



def read_jsonl(path: Path, issues: Issues) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line that is a JSON object."""
    for line_no, text in read_lines(path, issues):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            issues.error(data_error(path, line_no, "malformed JSON", "one JSON object per line",
                                json_problem(exc), "repair or remove this line"))
            continue
        if isinstance(obj, dict):
            yield line_no, obj
        else:
            issues.error(data_error(path, line_no, "line is not a JSON object", "an object {...}",
                                f"{type(obj).__name__} {show_value(obj)}", "write one object per line"))



def get_id(path: Path, line: int, obj: dict[str, Any], issues: Issues) -> str | None:
    """The entry's "_id" as a string (ints are coerced); None after reporting an error."""
    value = obj.get("_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    got = 'no "_id" key' if "_id" not in obj else f"{type(value).__name__} {show_value(value)}"
    issues.error(data_error(path, line, 'bad "_id"', "a non-empty string", got,
                        'give every line a unique string "_id"'))
    return None



def get_text(path: Path, line: int, obj: dict[str, Any], key: str, issues: Issues,
              required: bool) -> str | None:
    """A string field (an absent or null optional one is ""); None after reporting an error."""
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        got = f"no {key!r} key" if key not in obj else f"{type(value).__name__} {show_value(value)}"
        issues.error(data_error(path, line, f"bad {key!r}", "a string", got,
                            f"set {key!r} to the text as a JSON string"))
        return None
    return value



def all_blank(path: Path, line: int, keys: tuple[str, ...], values: list[str],
               issues: Issues) -> bool:
    """Report a line whose first field is blank and no other field can stand in for it.

    A blank first field is legal when a later one is filled in: a corpus line with a title but
    no text is a title-only document.
    """
    if values[0].strip() or any(value.strip() for value in values[1:]):
        return False
    alternatives = "".join(f" or a non-empty {key!r}" for key in keys[1:])
    issues.error(data_error(path, line, f"empty {keys[0]!r}", f"non-empty text{alternatives}",
                        show_value(values[0]), "fill in the text or remove this line"))
    return True



def read_entries(path: Path, issues: Issues, keys: tuple[str, ...],
                  noun: str) -> dict[str, list[str]]:
    """id -> values of ``keys`` for each valid line, in file order.

    The first key is required; it may be blank only when one of the others is not.
    """
    entries: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    numeric = 0  # ids written as JSON ints; the first such line is in first_numeric
    first_numeric = 0
    for line_no, obj in read_jsonl(path, issues):
        entry_id = get_id(path, line_no, obj, issues)
        values = [get_text(path, line_no, obj, key, issues, i == 0) for i, key in enumerate(keys)]
        texts = [value for value in values if value is not None]
        # Blank fields are reported even when the id is bad, so check_dataset lists both.
        if len(texts) < len(keys) or all_blank(path, line_no, keys, texts, issues):
            continue
        if entry_id is None:
            continue
        if entry_id in first_line:
            issues.error(data_error(path, line_no, f"duplicate _id {entry_id!r}", "unique ids",
                                f"the same id on lines {first_line[entry_id]} and {line_no}",
                                "remove one of the two lines or give it another id"))
            continue
        first_line[entry_id] = line_no
        if not isinstance(obj["_id"], str):
            numeric, first_numeric = numeric + 1, first_numeric or line_no
        entries[entry_id] = texts
    if numeric:
        issues.warnings.append(f'{path}: {numeric} numeric "_id" value(s) read as '
                               f"strings (first on line {first_numeric})")
    if not entries:
        raise data_error(path, None, f"no {noun}", 'at least one valid line {"_id", "text"}', "none",
                     "point to the folder of a complete BEIR dataset")
    return entries
