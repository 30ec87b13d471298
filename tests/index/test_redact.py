"""No message, error or traceback shows a database password, whatever the address's form (#17).

Every address below is unreachable or unparsable, so no server is needed: what is checked is
the text of the error honed raises (library), prints (CLI) and shows with ``--debug``.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
import pytest

from honed.index.index import Index
from honed.index.postgres.redact import driver_text, dsn_secrets, redact, scrub, scrubbed
from honed.index.postgres.store import PgIndex

psycopg = pytest.importorskip("psycopg")

SECRET = "Sup3rS3cret"
SECRETS = (SECRET, "Sup3r S3cret", "p@ss:w/rd", "p%40ss%3Aw%2Frd", "Sup@r S3cret", "r S3cret")
FORMS = [
    f"postgresql://app:{SECRET}@127.0.0.1:1/db",  # nothing listens on port 1
    f"postgres://app:{SECRET}@127.0.0.1:1/db",
    f"mysql://app:{SECRET}@127.0.0.1/db",  # wrong scheme: psycopg's error echoes the address
    f"http://app:{SECRET}@127.0.0.1:1/db",
    "postgresql://app:p%40ss%3Aw%2Frd@127.0.0.1:1/db",  # percent-encoded "p@ss:w/rd"
    f"postgresql://app@127.0.0.1:1/db?password={SECRET}",
    f"postgresql://app:{SECRET}@127.0.0.1:1/db?sslmode=bogus",
    f"postgresql://app:{SECRET}@127.0.0.1:notaport/db",
    "postgresql://app:Sup@r S3cret@127.0.0.1:1/db",  # a raw space: libpq quotes a fragment
    f"password={SECRET} host=127.0.0.1 port=1 dbname=db user=app",
    "host=127.0.0.1 port=1 password='Sup3r S3cret' user=app",
    f"host=127.0.0.1 password={SECRET} port",  # malformed key=value
    f"host=127.0.0.1 PASSWORD={SECRET} port=1",  # unknown keyword (case matters to libpq)
]


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


@pytest.mark.parametrize("dsn", FORMS)
def test_library_errors_never_show_the_password(dsn: str) -> None:
    index = Index.from_embeddings(np.eye(2, 4), ["a", "b"], 2)
    for call in (
        lambda: PgIndex.open(dsn),
        lambda: PgIndex.check_target(dsn, overwrite=True),
        lambda: PgIndex.upload(index, dsn),
    ):
        with pytest.raises((ConnectionError, ValueError)) as caught:
            call()
        message = str(caught.value)
        _assert_clean(message)
        assert "\n" not in message and "fix: " in message
        _assert_clean("".join(traceback.format_exception(caught.value)))  # as --debug shows it


@pytest.mark.parametrize("dsn", FORMS)
def test_cli_errors_never_show_the_password(
    dsn: str, mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from honed.cli.main import main

    index = ["index", "MODEL", str(mini_beir), "--out", str(tmp_path / "ix"), "--store", dsn]
    search = ["search", str(tmp_path / "ix"), "a query", "--store", dsn]
    for argv in (index, search, [*index, "--overwrite"]):
        assert main(argv) == 1  # before any model is loaded: the database is checked first
        captured = capsys.readouterr()
        _assert_clean(captured.out + captured.err)
        assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    with pytest.raises((ConnectionError, ValueError)) as caught:
        main(["--debug", *search])
    _assert_clean("".join(traceback.format_exception(caught.value)))
    assert not (tmp_path / "ix").exists()


def test_redact_forms() -> None:
    assert redact("mysql://u:pw@h/db") == "mysql://u:***@h/db"
    assert redact("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"  # a raw "@" too
    assert redact("postgresql://u:p%40ss@h/db?password=x&a=1") == (
        "postgresql://u:***@h/db?password=***&a=1"
    )
    assert redact(r"user=u password='it\'s' host=h") == "user=u password=*** host=h"
    fix = "fix: pass --store postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    assert scrub(fix, f"postgresql://app:{SECRET}@h/db") == fix  # a fix's placeholder stays
    assert dsn_secrets("postgresql://u:p%40ss@h/db") >= {"p%40ss", "p@ss"}
    assert dsn_secrets(r"password='a\'b c' host=h") >= {r"'a\'b c'", "a'b c"}


def test_scrub_replaces_every_form_wherever_it_appears() -> None:
    dsn = "postgresql://app:p%40ss%3Aword@h/db"
    text = "failed for p@ss:word (given as p%40ss%3Aword) at postgresql://x:other@h"
    assert scrub(text, dsn) == "failed for *** (given as ***) at postgresql://x:***@h"
    assert scrub("no address here", None) == "no address here"


def test_driver_text_withholds_a_fragment_of_the_password() -> None:
    dsn = "postgresql://app:Sup@r S3cret@h/db"
    err = psycopg.ProgrammingError('unexpected spaces found in "r S3cret@h/db", use %20')
    assert driver_text(err, dsn) == (
        "the driver's message is withheld: it quotes part of the password"
    )
    assert driver_text(psycopg.OperationalError("Connection refused\nmore"), dsn) == (
        "Connection refused"
    )


def test_scrubbed_masks_exceptions_and_their_chain() -> None:
    dsn = f"postgresql://app:{SECRET}@h/db"

    class Picky(Exception):
        def __init__(self, code: int, text: str) -> None:
            super().__init__(code, text)

    with pytest.raises(ValueError) as caught:
        with scrubbed(dsn):
            try:
                raise KeyError(f"inner {dsn}")
            except KeyError:
                raise ValueError("outer, no address") from None
    assert str(caught.value) == "outer, no address"  # nothing to mask: re-raised as is
    with pytest.raises(ValueError) as caught:
        with scrubbed(dsn):
            try:
                raise KeyError(f"inner {dsn}")
            except KeyError as err:
                raise ValueError("outer") from err  # the cause carries the address
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    _assert_clean("".join(traceback.format_exception(caught.value)))
    with pytest.raises(RuntimeError) as caught:
        with scrubbed(dsn):
            raise Picky(1, f"bad {SECRET}")
    _assert_clean(str(caught.value))
