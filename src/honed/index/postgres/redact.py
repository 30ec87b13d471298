"""Connection strings without their passwords, in every message honed prints or raises.

A password can reach a message two ways: honed names the address (``could not connect to
...``), or the driver's own error text echoes the connection string (psycopg's ``missing "="
after "mysql://u:PASSWORD@host/db"``). Both are covered: :func:`redact` masks the password of
an address by its structure, whatever the scheme (``postgresql://``, or a wrong one such as
``mysql://``), in the URI's userinfo or its ``?password=`` parameter, or in the ``key=value``
form (quoted or not); :func:`scrub` also replaces every form of the password that the address
holds (as written, and percent-decoded) wherever it appears in a text; and :func:`scrubbed`
applies that to any exception leaving a block, its chained causes included.

Literal replacement needs a password of at least :data:`MIN_LITERAL` characters (a shorter one
would mask letters all over the message); the structural masks apply to any length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, unquote_plus

__all__ = ["MASK", "MIN_LITERAL", "driver_text", "dsn_secrets", "redact", "scrub", "scrubbed"]

MASK = "***"
MIN_LITERAL = 3

# scheme://user:PASSWORD@ ; the password runs to the last "@" before whitespace or a quote
_URI_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^\s:/@?#'\"]*:)([^\s'\"]*@)")
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#\s'\"]*)", re.IGNORECASE)
# password=VALUE of the key=value form: at the start, or after a space, quote or parenthesis
_KEY_PASSWORD = re.compile(
    r"(?<![^\s'\"(])(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE
)


def _uri_passwords(dsn: str) -> set[str]:
    """The password of a URI's userinfo, to the first and to the last "@" (both, to be safe)."""
    head, sep, rest = dsn.partition("://")
    if not sep or not re.fullmatch(r"\s*[A-Za-z][\w+.-]*", head):
        return set()
    found = set()
    for at in (rest.find("@"), rest.rfind("@")):
        user_info = rest[:at] if at > 0 else ""
        if ":" in user_info:
            found.add(user_info.split(":", 1)[1])
    return found


def dsn_secrets(dsn: str) -> set[str]:
    """Every form of the password(s) that ``dsn`` holds: as written, unquoted, percent-decoded."""
    raw = _uri_passwords(dsn)
    raw.update(m.group(1) for m in re.finditer(r"[?&]password=([^&#]*)", dsn, re.IGNORECASE))
    for match in _KEY_PASSWORD.finditer(dsn):
        value = match.group(2)
        if value.startswith("'"):
            raw.add(value)
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        raw.add(value)
    decoded = {form for value in raw for form in (value, unquote(value), unquote_plus(value))}
    return {value for value in decoded if value}


def _mask(match: re.Match[str]) -> str:
    """``match`` with its value masked; kept when masked already or a ``PASSWORD`` placeholder."""
    value = match.group(2)
    if value.startswith(MASK) or value.rstrip("@") == "PASSWORD":
        return match.group(0)
    return match.group(1) + MASK + ("@" if value.endswith("@") else "")


def _structural(text: str) -> str:
    for pattern in (_URI_PASSWORD, _QUERY_PASSWORD, _KEY_PASSWORD):
        text = pattern.sub(_mask, text)
    return text


def scrub(text: str, dsn: str | None) -> str:
    """``text`` with every form of ``dsn``'s password masked, and any address in it redacted."""
    for secret in sorted(dsn_secrets(dsn or ""), key=len, reverse=True):
        if len(secret) >= MIN_LITERAL:
            text = text.replace(secret, MASK)
    return _structural(text)


def driver_text(err: BaseException, dsn: str) -> str:
    """The first line of a driver error about ``dsn``, scrubbed, or withheld if it quotes a piece.

    libpq quotes the part of an address it could not parse (``unexpected spaces found in "r
    S3cret@host"``), which can be a fragment of the password: any 4 characters of it in a row
    withhold the driver's text.
    """
    text = scrub(" ".join(str(err).split("\n")[:1]).strip().rstrip("."), dsn)
    for secret in dsn_secrets(dsn):
        if any(secret[i : i + 4] in text for i in range(len(secret) - 3)):
            return "the driver's message is withheld: it quotes part of the password"
    return text or type(err).__name__


def redact(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***`` (URL of any scheme, or ``key=value`` form).

    Example:
        >>> redact("postgresql://app:s3cret@db:5432/search")
        'postgresql://app:***@db:5432/search'
    """
    return scrub(dsn, dsn)


def _leaks(err: BaseException, dsn: str) -> bool:
    """Whether ``err`` or an exception chained to it carries a form of the password."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = " ".join(str(arg) for arg in current.args) + str(current)
        if scrub(text, dsn) != text:
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def scrubbed(dsn: str) -> Iterator[None]:
    """Re-raise any exception leaving the block with ``dsn``'s password masked in its message.

    The new exception has the same type where it can be built from a message (else
    RuntimeError) and no chained cause, so not even a ``--debug`` traceback shows the password.
    """
    try:
        yield
    except Exception as err:
        if not _leaks(err, dsn):
            raise
        message = scrub(str(err), dsn)
        try:
            clean = type(err)(message)
        except Exception:  # an exception type that needs other arguments
            clean = RuntimeError(message)
        raise clean from None
