"""Ids that look the same but are not: the explanation for an unknown id that has a look-alike.

A qrels line naming ``'q1'`` when queries.jsonl holds ``'q1 '`` (or ``'café'`` written NFD in one
file and NFC in the other) used to be reported as "unknown 'q1'", which reads as if the id were
missing. :class:`LookAlikes` finds the known id that differs only invisibly and says how.

Example:
    >>> LookAlikes(["q1 "], "queries.jsonl").explain("q1")
    "'q1', which differs from the queries.jsonl id 'q1 ' only by surrounding spaces"
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

__all__ = ["LookAlikes", "canonical_id"]

# Characters that render as nothing: zero-width space, non-joiner, joiner, word joiner, BOM.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def canonical_id(value: str) -> str:
    """``value`` stripped of surrounding spaces and invisible characters, NFC-normalised."""
    return unicodedata.normalize("NFC", value.strip().strip(INVISIBLE).strip())


def _form(value: str) -> str:
    for form in ("NFC", "NFD"):
        if unicodedata.is_normalized(form, value):
            return form
    return "mixed"


def _difference(value: str, known: str) -> str:
    """How two ids with the same :func:`canonical_id` differ, in words."""
    spaced = (value.strip(), known.strip())
    bare = tuple(v.strip(INVISIBLE).strip() for v in spaced)
    reasons = []
    if spaced != (value, known):
        reasons.append("surrounding spaces")
    if bare != spaced:
        reasons.append("invisible characters (e.g. a zero-width space) around it")
    if bare[0] != bare[1]:
        reasons.append(f"Unicode normalisation ({_form(bare[0])} vs {_form(bare[1])})")
    return " and ".join(reasons)


def _shown(value: str, known: str, reason: str) -> tuple[str, str]:
    """``repr`` of both ids; ``ascii`` when only escapes make the difference visible."""
    if reason == "surrounding spaces":
        return repr(value), repr(known)
    return ascii(value), ascii(known)


class LookAlikes:
    """The known ids of one file, indexed by :func:`canonical_id` on the first question.

    Args:
        known: the ids of the file (e.g. queries.jsonl's).
        source: the file's name, for the message.
    """

    def __init__(self, known: Iterable[str], source: str) -> None:
        self._known = known
        self._source = source
        self._index: dict[str, str] | None = None  # built once, only when an id is unknown

    def explain(self, value: str) -> str | None:
        """``"'x', which differs from the <source> id 'x ' only by ..."``, or None."""
        if self._index is None:
            self._index = {}
            for each in self._known:
                self._index.setdefault(canonical_id(each), each)
        known = self._index.get(canonical_id(value))
        if known is None or known == value:
            return None
        reason = _difference(value, known)
        shown_value, shown_known = _shown(value, known, reason)
        return f"{shown_value}, which differs from the {self._source} id {shown_known} only by {reason}"
