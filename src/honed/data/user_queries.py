"""A file of real user queries (no labels): what ``--queries FILE`` of check and diagnose reads.

Two formats, told apart by the first non-blank line: JSON Lines with a ``"text"`` field (a
line starting with ``{``), or plain text with one query per line. Blank lines are skipped.
The ids are ``"line N"`` (1-based), so a message can point at the line.
"""

from __future__ import annotations

import json
from pathlib import Path

from honed.data.errors import DataError, data_error, show_value

__all__ = ["load_user_queries"]


def _jsonl_text(path: Path, number: int, line: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise data_error(path, number, "not a JSON object", 'one {"text": ...} per line',
                         f"invalid JSON ({exc.msg})", "write one JSON object per line, or plain "
                         "text with one query per line") from None
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise data_error(path, number, 'no "text" field', 'a non-empty string in "text"',
                         show_value(record), 'give each line a "text" field with the query')
    return text


def load_user_queries(path: str | Path) -> dict[str, str]:
    """``"line N" -> query`` from a plain-text or JSONL file of user queries.

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: not UTF-8, no query in it, or a JSONL line without a ``"text"`` string.

    Example:
        >>> queries = load_user_queries("logs/queries.txt")  # doctest: +SKIP
        >>> queries["line 1"]  # doctest: +SKIP
        'my son has had a fever for three days, should I take him to a doctor?'
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: no such file (expected a file of user queries: one per line, or JSONL "
            'with a "text" field); fix: check the path given to --queries'
        )
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); fix: convert it, "
                        f"e.g. iconv -f latin1 -t utf-8 {file}", file) from None
    numbered = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise data_error(file, None, "no query", "at least one query", "an empty file",
                         "put one query per line")
    jsonl = numbered[0][1].startswith("{")
    return {f"line {n}": _jsonl_text(file, n, line) if jsonl else line for n, line in numbered}
