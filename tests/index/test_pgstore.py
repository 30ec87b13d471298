"""The PostgreSQL + pgvector backend against a real server (pgserver ships PostgreSQL + pgvector).

One server is started per test session in a temporary folder; each test uses its own table.
Skipped only when pgserver (a dev dependency) cannot be imported.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import honed.index.postgres.tables
import honed.index.postgres.upload
from conftest import MINI_QUERIES, default_sigint
from honed.data.corpus import read_corpus
from honed.index.index import Index
from honed.index.postgres.store import PgIndex, redact
from honed.retrieval.bm25 import BM25Retriever
from honed.retrieval.fusion import FusionConfig, FusionMethod

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

pgserver = pytest.importorskip("pgserver", reason="pgserver (dev dependency) runs the test server")
psycopg = pytest.importorskip("psycopg")

SD = 16
QUERIES = [text for _, text in MINI_QUERIES] + ["malaria malaria in Africa", "zzqx unknownword"]
Hits = list[list[tuple[str, float]]]


@pytest.fixture(scope="session")
def server() -> Iterator[Any]:
    """A PostgreSQL + pgvector server on a Unix socket in a temporary folder.

    Not under pytest's tmp_path: run as root, pgserver starts PostgreSQL as a system user that
    must traverse the folder's parents, and every new pytest session chmods
    /tmp/pytest-of-USER back to 0700 (a concurrent session would lock the server out).
    """
    pgdata = Path(tempfile.mkdtemp(prefix="honed-pg-")).resolve() / "data"
    for attempt in range(3):
        try:
            srv = pgserver.get_server(pgdata, cleanup_mode="delete")
            srv.psql("CREATE EXTENSION IF NOT EXISTS vector;")
            break
        except (subprocess.SubprocessError, AssertionError, OSError) as err:
            # pgserver gives pg_ctl 10 s; a loaded CI machine can need more. A second call finds
            # the server if it came up meanwhile, or starts it again.
            pgserver.PostgresServer._instances.pop(pgdata, None)
            if attempt == 2:
                log = pgdata / "log"
                tail = log.read_text(errors="replace")[-2000:] if log.is_file() else "(no log)"
                pytest.fail(f"pgserver could not start PostgreSQL: {err!r}\n{tail}")
            time.sleep(2)
    yield srv
    srv.cleanup()
    shutil.rmtree(pgdata.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def dsn(server: Any) -> str:
    return str(server.get_uri())


def _dsn(server: Any, database: str, user: str = "postgres") -> str:
    base = str(server.get_uri())  # postgresql://postgres:@/postgres?host=...
    return base.replace("postgres:@/postgres?", f"{user}:@/{database}?")


@pytest.fixture(scope="module")
def folder(
    tiny_model: SentenceTransformer, mini_beir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A float32 index of the mini corpus with its BM25 index and a zscore fusion record."""
    ids, texts = read_corpus(mini_beir)
    out = tmp_path_factory.mktemp("pgindex") / "ix"
    fusion = FusionConfig(FusionMethod.ZSCORE, 0.7)
    Index.build(tiny_model, ids, texts, out, shortlist_dim=SD, bm25=True, fusion=fusion)
    return out


@pytest.fixture(scope="module")
def uploaded(folder: Path, dsn: str) -> Iterator[PgIndex]:
    with PgIndex.upload(folder, dsn, table="mini", overwrite=True) as pg:
        yield pg


@pytest.fixture(scope="module")
def query_emb(tiny_model: SentenceTransformer) -> np.ndarray:
    return tiny_model.encode(QUERIES, normalize_embeddings=True)


def _assert_same(got: Hits, want: Hits, tol: float = 1e-5) -> None:
    """Same documents in the same order with the same scores, ties (within ``tol``) aside."""
    assert len(got) == len(want)
    for row_got, row_want in zip(got, want):
        assert len(row_got) == len(row_want)
        np.testing.assert_allclose(
            [s for _, s in row_got], [s for _, s in row_want], atol=tol, rtol=tol
        )
        scores_want = dict(row_want)
        for rank, ((doc_got, score), (doc_want, _)) in enumerate(zip(row_got, row_want)):
            if doc_got != doc_want:  # only a tie may swap: both documents score the same
                tied = [d for d, s in row_want if abs(s - score) <= tol]
                assert doc_got in tied or doc_got not in scores_want, (rank, row_got, row_want)
                if doc_got in scores_want:
                    assert abs(scores_want[doc_got] - score) <= tol


def _tables(dsn: str, like: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE %s ORDER BY relname", [like]
        ).fetchall()
    return [r[0] for r in rows]


# --------------------------------------------------------------------------- same results


def test_upload_layout_and_meta(uploaded: PgIndex, folder: Path, dsn: str) -> None:
    embedded = Index.load(folder)
    assert uploaded.info == embedded.info and len(uploaded) == 40
    assert uploaded.fusion == FusionConfig(FusionMethod.ZSCORE, 0.7)
    assert uploaded.bm25 is not None and uploaded.bm25["stopwords"] == "en"
    assert uploaded.upload_seconds is not None and uploaded.upload_seconds > 0
    assert _tables(dsn, "mini%") == [
        "mini", "mini_bm25", "mini_bm25_term", "mini_doc_id_key", "mini_meta", "mini_meta_pkey",
        "mini_pkey", "mini_short_hnsw", "mini_vocab", "mini_vocab_pkey",
    ]  # fmt: skip
    with psycopg.connect(dsn) as conn:
        short, full = conn.execute(
            "SELECT vec_short::text, vec_full::text FROM mini WHERE doc_id = 'd07'"
        ).fetchone()
    row = embedded.ids.index("d07")
    head = embedded.full[row, :SD] / np.linalg.norm(embedded.full[row, :SD])
    np.testing.assert_allclose(json.loads(short), head, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(json.loads(full), embedded.full[row], rtol=1e-6, atol=1e-7)
    assert uploaded.texts(["d01", "nope"]) == embedded.texts(["d01"])


def test_search_equals_embedded_index(
    uploaded: PgIndex, folder: Path, query_emb: np.ndarray
) -> None:
    embedded = Index.load(folder)
    for k, shortlist in ((10, 20), (10, 100), (3, 3), (40, 40)):
        want = embedded.search(query_emb, k=k, shortlist=shortlist)
        _assert_same(uploaded.search(query_emb, k=k, shortlist=shortlist), want)
        _assert_same(uploaded.search(query_emb, k=k, shortlist=shortlist, exact=True), want)
    _assert_same(uploaded.search_exact(query_emb, k=10), embedded.search_exact(query_emb, k=10))
    # a shortlist of the whole corpus is exact search
    _assert_same(
        uploaded.search(query_emb, k=10, shortlist=40), embedded.search_exact(query_emb, 10)
    )


def test_hnsw_index_scan_gives_the_same_top_10(
    uploaded: PgIndex, folder: Path, query_emb: np.ndarray
) -> None:
    """Force the HNSW scan (a 40-row table is otherwise scanned sequentially)."""
    conn = uploaded._conn
    plan = conn.execute(
        "EXPLAIN SELECT doc_row FROM mini ORDER BY vec_short <#> "
        "(SELECT vec_short FROM mini WHERE doc_row = 0) LIMIT 20"
    ).fetchall()
    conn.execute("SET enable_seqscan = off")
    try:
        plan = conn.execute(
            "EXPLAIN SELECT doc_row FROM mini ORDER BY vec_short <#> "
            "(SELECT vec_short FROM mini WHERE doc_row = 0) LIMIT 20"
        ).fetchall()
        assert any("mini_short_hnsw" in line for (line,) in plan), plan
        got = uploaded.search(query_emb, k=10, shortlist=20)
    finally:
        conn.execute("RESET enable_seqscan")
    _assert_same(got, Index.load(folder).search(query_emb, k=10, shortlist=20))


def test_larger_corpus_hnsw_matches_embedded(dsn: str, tmp_path: Path) -> None:
    """3,000 random documents: the HNSW shortlist gives the embedded top-10 (float32 tier)."""
    rng = np.random.default_rng(0)
    n, dim = 3000, 32
    base = rng.standard_normal((n, dim)).astype(np.float32)
    base[:, :8] *= 3  # Matryoshka-like: the leading dims carry most of the signal
    ids = [f"doc{i}" for i in range(n)]
    embedded = Index.from_embeddings(base, ids, 8, "float32", out=tmp_path / "ix")
    queries = base[rng.choice(n, 50, replace=False)] + 0.5 * rng.standard_normal((50, dim))
    with PgIndex.upload(embedded, dsn, table="random3k", overwrite=True, batch_size=700) as pg:
        assert pg._conn.execute("SELECT count(*) FROM random3k").fetchone() == (n,)
        want = embedded.search(queries, k=10, shortlist=100)
        _assert_same(pg.search(queries, k=10, shortlist=100, exact=True), want)
        got = pg.search(queries, k=10, shortlist=100)
        agree = np.mean([a == b for g, w in zip(got, want) for (a, _), (b, _) in zip(g, w)])
        assert agree >= 0.99, agree
        # the planner takes the HNSW index here, and ef_search is raised to the shortlist (at
        # pgvector's default of 40 an HNSW scan would return at most 40 rows)
        plan = pg._conn.execute(
            "EXPLAIN SELECT doc_row FROM random3k ORDER BY vec_short <#> "
            "(SELECT vec_short FROM random3k WHERE doc_row = 0) LIMIT 300"
        ).fetchall()
        assert any("random3k_short_hnsw" in line for (line,) in plan), plan
        assert {len(h) for h in pg.search(queries[:5], k=300, shortlist=300)} == {300}
        _assert_same(
            pg.search(queries, k=10, shortlist=100, ef_search=400),
            embedded.search(queries, k=10, shortlist=100),
        )
        # pgvector's HNSW scan cannot return more than 1000 candidates: exact scan, or refusal
        _assert_same(
            pg.search(queries[:3], k=5, shortlist=1500, exact=True),
            embedded.search(queries[:3], 5, 1500),
        )
        with pytest.raises(
            ValueError, match="returns at most 1000 candidates .*fix: use --shortlist <= 1000"
        ):
            pg.search(queries[:3], k=5, shortlist=1500)
        with pytest.raises(ValueError, match="ef_search 2000: .* at most 1000"):
            pg.search(queries[:3], k=5, ef_search=2000)


def test_exact_mode_is_exact_after_many_hnsw_searches(dsn: str) -> None:
    """A plan cached for HNSW searches must not leak into exact mode (no prepared statements)."""
    rng = np.random.default_rng(2)
    embedded = Index.from_embeddings(
        rng.standard_normal((3000, 32)), [f"d{i}" for i in range(3000)], 8
    )
    queries = rng.standard_normal((30, 32))
    want = embedded.search(queries, k=10, shortlist=20)
    # a deliberately poor graph (m=2), so that HNSW and exact shortlists differ
    with PgIndex.upload(
        embedded, dsn, table="poor_graph", overwrite=True, hnsw_m=2, hnsw_ef_construction=4
    ) as pg:
        approximate = pg.search(queries, k=10, shortlist=20)  # 30 executions of one statement
        assert approximate != want
        _assert_same(pg.search(queries, k=10, shortlist=20, exact=True), want)


def test_bm25_scores_equal_bm25s(uploaded: PgIndex, mini_beir: Path) -> None:
    ids, texts = read_corpus(mini_beir)
    reference = BM25Retriever(ids, texts)
    qids = [f"q{i}" for i in range(len(QUERIES))]
    want = reference.search(qids, QUERIES, k=40)
    got = uploaded.bm25_search(QUERIES, k=40)
    for qid, row in zip(qids, got):
        assert {d for d, _ in row} == set(want[qid])
        for doc, score in row:
            assert score == pytest.approx(want[qid][doc], rel=1e-5)
    assert got[-1] == []  # no known token
    # the repeated term counts twice, as in bm25s
    single = dict(uploaded.bm25_search(["malaria"], k=40)[0])
    double = dict(uploaded.bm25_search(["malaria malaria"], k=40)[0])
    assert double == pytest.approx({d: 2 * s for d, s in single.items()}, rel=1e-6)
    # and bm25s's own scores (all documents) agree
    model = reference._retriever
    scores = model.get_scores(reference._tokenize(["statin muscle pain"])[0])
    for doc, score in uploaded.bm25_search(["statin muscle pain"], k=40)[0]:
        assert score == pytest.approx(float(scores[ids.index(doc)]), rel=1e-5)
    top3 = uploaded.bm25_search(["statin muscle pain"], k=3)[0]
    assert [d for d, _ in top3] == list(reference.search(["q"], ["statin muscle pain"], k=3)["q"])


@pytest.mark.parametrize("method", ["zscore", "rrf", "minmax"])
def test_hybrid_equals_embedded(
    uploaded: PgIndex, folder: Path, query_emb: np.ndarray, method: str
) -> None:
    embedded = Index.load(folder)
    fusion = FusionConfig(FusionMethod(method), 0.6 if method != "zscore" else 0.7)
    embedded.info = replace(embedded.info, fusion=fusion)
    want = embedded.search_hybrid(QUERIES, query_emb, k=10, shortlist=20)
    override = None if method == "zscore" else fusion  # zscore 0.7 is the stored record
    got = uploaded.hybrid_search(QUERIES, query_emb, k=10, shortlist=20, fusion=override)
    _assert_same(got, want, tol=1e-5)


def test_upload_from_index_object_and_explicit_bm25(
    dsn: str, tiny_model: SentenceTransformer, mini_beir: Path, query_emb: np.ndarray
) -> None:
    ids, texts = read_corpus(mini_beir)
    emb = tiny_model.encode(texts, normalize_embeddings=True)
    memory = Index.from_embeddings(emb, ids, SD, "int8")  # in memory: no folder, no texts
    retriever = BM25Retriever(ids, texts)
    fusion = FusionConfig(FusionMethod.RRF, 0.5)
    with PgIndex.upload(memory, dsn, table="memory", bm25=retriever, fusion=fusion) as pg:
        assert pg.info.precision.value == "int8" and pg.fusion == fusion
        # the database shortlists on float32 prefixes: exact shortlist == embedded exact
        _assert_same(pg.search(query_emb, k=10, shortlist=40), memory.search_exact(query_emb, 10))
        assert pg.texts(["d01"]) == {}
        want = fusion.fuse(
            {str(i): dict(h) for i, h in enumerate(memory.search_exact(query_emb, 40))},
            retriever.search([str(i) for i in range(len(QUERIES))], QUERIES, k=100),
            100,
        )
        got = pg.hybrid_search(QUERIES, query_emb, k=10, shortlist=40, exact=True)
        _assert_same(got, [list(want[str(i)].items())[:10] for i in range(len(QUERIES))])


def test_open_checks_the_model(
    uploaded: PgIndex, dsn: str, tiny_model: SentenceTransformer, tiny_model_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    with PgIndex.open(dsn, tiny_model, table="mini") as pg:
        assert pg.info == uploaded.info
    other = SentenceTransformer(str(tiny_model_path), device="cpu")
    next(iter(other.parameters())).data.add_(0.01)
    with pytest.raises(
        ValueError,
        match=r"table mini: built by model .* but the given model has fingerprint .*fix: search with --model",
    ):
        PgIndex.open(dsn, other, table="mini")


# --------------------------------------------------------------------------- atomic upload


def test_interrupted_upload_keeps_the_previous_table(
    folder: Path, dsn: str, tmp_path: Path, query_emb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = PgIndex.upload(folder, dsn, table="atomic")
    before = first.search(query_emb, k=10)
    first.close()
    other = Index.from_embeddings(
        np.random.default_rng(0).standard_normal((500, 32)),
        [f"x{i}" for i in range(500)],
        8,
        out=tmp_path / "other",
    )
    real = honed.index.postgres.tables.doc_chunks

    def crash_mid_way(*args: Any) -> Iterator[bytes]:
        for n, chunk in enumerate(real(*args)):
            if n == 3:
                raise RuntimeError("simulated crash mid-upload")
            yield chunk

    def interrupt(*args: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C after every row was copied, before the swap

    for module, name, failure, error in (
        (honed.index.postgres.tables, "doc_chunks", crash_mid_way, RuntimeError),
        (honed.index.postgres.upload, "write_meta", interrupt, KeyboardInterrupt),
    ):
        with monkeypatch.context() as patch:
            patch.setattr(module, name, failure)
            with pytest.raises(error):
                PgIndex.upload(other, dsn, table="atomic", overwrite=True, batch_size=100)
        with PgIndex.open(dsn, table="atomic") as pg:
            assert pg.info.count == 40 and pg.search(query_emb, k=10) == before
            assert pg.bm25 is not None
        assert not [t for t in _tables(dsn, "atomic%") if "stage" in t]
    # overwrite replaces it, and drops the side tables the new index does not have
    with PgIndex.upload(other, dsn, table="atomic", overwrite=True, batch_size=100) as pg:
        assert pg.info.count == 500 and pg.bm25 is None and pg.fusion is None
    assert _tables(dsn, "atomic%") == [
        "atomic", "atomic_doc_id_key", "atomic_meta", "atomic_meta_pkey", "atomic_pkey",
        "atomic_short_hnsw",
    ]  # fmt: skip


STORE_CHILD = r"""
import os, signal, sys, time
from pathlib import Path
import honed.index.postgres.tables as tables
import honed.index.postgres.upload as upload
from honed.index.postgres.store import PgIndex

at, action, flag, folder, dsn, table = sys.argv[1:7]
calls = [0]

def point():
    calls[0] += 1
    if calls[0] == int(at):
        if action == "pause":
            flag_path = Path(flag)
            flag_path.write_text(str(os.getpid()))
            while True:  # inside the upload's transaction, its lock held
                time.sleep(0.05)
        os.kill(os.getpid(), getattr(signal, action))

real_chunks, real_meta, real_swap = tables.doc_chunks, upload.write_meta, upload.swap_in

def chunks(*args):
    for chunk in real_chunks(*args):
        point()
        yield chunk

def meta(*args):
    point()
    return real_meta(*args)

def swap(*args):
    point()
    return real_swap(*args)

tables.doc_chunks, upload.write_meta, upload.swap_in = chunks, meta, swap
PgIndex.upload(Path(folder), dsn, table=table, overwrite=True, batch_size=5).close()
"""
STORE_POINTS = 10 + 2  # 40 rows in COPY chunks of 5 (+ signature and trailer), meta, swap


def _store_child(action: str, at: int, flag: Path, folder: Path, dsn: str, table: str) -> Any:
    return subprocess.Popen(
        [sys.executable, "-c", STORE_CHILD, str(at), action, str(flag), str(folder), dsn, table],
        stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("seed", "action"), [(21, "SIGKILL"), (22, "SIGINT"), (23, "SIGKILL"), (24, "SIGINT")]
)
def test_a_killed_upload_leaves_the_previous_table(
    seed: int, action: str, folder: Path, dsn: str, tmp_path: Path, query_emb: np.ndarray
) -> None:
    """Killed at a random point of the upload (SIGKILL, SIGINT): the previous index is intact."""
    import random

    table = f"killed_{seed}"
    previous = Index.from_embeddings(
        np.random.default_rng(seed).standard_normal((6, 32)), list("abcdef"), 8
    )
    with PgIndex.upload(previous, dsn, table=table, overwrite=True) as pg:
        before = pg.search(query_emb, k=3)
    at = random.Random(seed).randint(1, STORE_POINTS)
    proc = _store_child(action, at, tmp_path / "flag", folder, dsn, table)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (-9, -2, 1), err[-2000:]  # SIGINT: KeyboardInterrupt, exit 1 or -2
    with PgIndex.open(dsn, table=table) as pg:
        assert len(pg) == 6 and pg.search(query_emb, k=3) == before
    assert not [t for t in _tables(dsn, f"{table}%") if "stage" in t]
    with PgIndex.upload(folder, dsn, table=table, overwrite=True) as pg:  # and it goes again
        assert len(pg) == 40


def test_two_uploads_at_once_one_is_refused_with_the_pid(
    folder: Path,
    dsn: str,
    tmp_path: Path,
    tiny_model_path: Path,
    mini_beir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from honed.cli.main import main

    flag = tmp_path / "flag"
    proc = _store_child("pause", 5, flag, folder, dsn, "raced")
    try:
        deadline = time.monotonic() + 60
        while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), proc.stderr.read() if proc.stderr else ""
        with psycopg.connect(dsn) as admin:  # the backend that runs the paused upload
            (pid,) = admin.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objid = (hashtext('honed:raced')::bigint & 4294967295)::oid"
            ).fetchone()
        refusal = rf"another upload to it is running \(database backend pid {pid}\)"
        with pytest.raises(FileExistsError, match=refusal):
            PgIndex.upload(folder, dsn, table="raced", overwrite=True)
        argv = ["index", str(tiny_model_path), str(mini_beir), "--out", str(tmp_path / "ix")]
        assert main([*argv, "--store", dsn, "--table", "raced", "--overwrite"]) == 1
        assert re.search(refusal, _one_error_line(capsys.readouterr().err))
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    for _ in range(100):  # the server ends the dead client's transaction, and its lock
        try:
            with PgIndex.upload(folder, dsn, table="raced", overwrite=True) as pg:
                assert len(pg) == 40
            break
        except FileExistsError:
            time.sleep(0.1)
    else:
        pytest.fail("the killed upload's lock was never released")


# --------------------------------------------------------------------------- errors


def test_table_exists_without_overwrite(uploaded: PgIndex, folder: Path, dsn: str) -> None:
    with pytest.raises(FileExistsError, match="table mini: exists; fix: pass --overwrite"):
        PgIndex.upload(folder, dsn, table="mini")
    with pytest.raises(FileExistsError, match="table mini: exists; fix: pass --overwrite"):
        PgIndex.check_target(dsn, table="mini")  # the same refusal, before any encoding
    PgIndex.check_target(dsn, table="mini", overwrite=True)
    PgIndex.check_target(dsn, table="free_name")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS precious")
        conn.execute("CREATE TABLE precious (x int)")
        conn.execute("INSERT INTO precious VALUES (42)")
    with pytest.raises(
        FileExistsError, match="table precious: not a honed index .* will not drop it"
    ):
        PgIndex.upload(folder, dsn, table="precious", overwrite=True)
    with pytest.raises(FileExistsError, match="not a honed index"):
        PgIndex.check_target(dsn, table="precious", overwrite=True)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT x FROM precious").fetchall() == [(42,)]


def _rows(dsn: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def _user_tables(dsn: str, statements: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_overwrite_never_drops_a_users_own_tables(
    folder: Path,
    dsn: str,
    tiny_model_path: Path,
    mini_beir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#17: a user's orders + orders_meta (no honed marker) were dropped by --overwrite, exit 0."""
    from honed.cli.main import main

    _user_tables(dsn, [
        "DROP TABLE IF EXISTS orders, orders_meta",
        "CREATE TABLE orders (id int PRIMARY KEY, total int)",
        "INSERT INTO orders VALUES (1, 10), (2, 20)",
        # the same columns as honed's meta table, even a layout row: but not honed's marker
        "CREATE TABLE orders_meta (key text PRIMARY KEY, value jsonb NOT NULL)",
        """INSERT INTO orders_meta VALUES ('layout', '{"version": 1}'), ('owner', '"sales"')""",
    ])  # fmt: skip
    refusal = r"table orders: not a honed index \(no honed marker in orders_meta\), so --overwrite will not drop it; fix: choose another --table"
    with pytest.raises(FileExistsError, match=refusal):
        PgIndex.upload(folder, dsn, table="orders", overwrite=True)
    with pytest.raises(FileExistsError, match=refusal):
        PgIndex.check_target(dsn, table="orders", overwrite=True)
    argv = ["index", str(tiny_model_path), str(mini_beir), "--out", str(tmp_path / "ix")]
    assert main([*argv, "--store", dsn, "--table", "orders", "--overwrite"]) == 1
    assert "not a honed index (no honed marker" in _one_error_line(capsys.readouterr().err)
    assert _rows(dsn, "orders") == [(1, 10), (2, 20)]
    assert _rows(dsn, "orders_meta") == [("layout", {"version": 1}), ("owner", "sales")]
    # a meta table of other columns, and a docs table without any meta table
    _user_tables(dsn, [
        "DROP TABLE IF EXISTS items, items_meta, lonely",
        "CREATE TABLE items (x int)", "CREATE TABLE items_meta (a int)", "CREATE TABLE lonely (x int)",
    ])  # fmt: skip
    with pytest.raises(FileExistsError, match=r"not a honed index \(items_meta does not have honed's key/value columns\)"):
        PgIndex.upload(folder, dsn, table="items", overwrite=True)
    with pytest.raises(FileExistsError, match=r"table lonely: not a honed index \(no lonely_meta\)"):
        PgIndex.upload(folder, dsn, table="lonely", overwrite=True)
    assert _tables(dsn, "items%") == ["items", "items_meta"] and _tables(dsn, "lonely") == ["lonely"]


def test_overwrite_checks_every_table_it_would_replace(folder: Path, dsn: str) -> None:
    """Only the tables honed's marker lists: a user's side table beside a honed index stays."""
    plain = Index.from_embeddings(np.random.default_rng(3).standard_normal((6, 32)), list("abcdef"), 8)
    PgIndex.upload(plain, dsn, table="shared", overwrite=True).close()  # no BM25 side tables
    _user_tables(dsn, [
        "DROP TABLE IF EXISTS shared_bm25", "CREATE TABLE shared_bm25 (note text)",
        "INSERT INTO shared_bm25 VALUES ('mine')",
    ])  # fmt: skip
    with pytest.raises(
        FileExistsError,
        match=r"table shared_bm25: exists but is not part of the honed index in shared \(its marker does not list it\), so --overwrite will not drop it; fix: rename or drop shared_bm25 yourself",
    ):
        PgIndex.upload(folder, dsn, table="shared", overwrite=True)  # folder has BM25
    assert _rows(dsn, "shared_bm25") == [("mine",)]
    with PgIndex.open(dsn, table="shared") as pg:
        assert len(pg) == 6  # the honed index is untouched too
    # a marker whose fingerprint does not match the index record beside it is no proof
    _user_tables(dsn, ["DROP TABLE shared_bm25", """UPDATE shared_meta SET value = jsonb_set(value, '{count}', '7') WHERE key = 'index'"""])
    with pytest.raises(FileExistsError, match="marker's fingerprint does not match the index record"):
        PgIndex.upload(plain, dsn, table="shared", overwrite=True)
    # a user's table under the name honed stages an upload in is never dropped either
    _user_tables(dsn, ["DROP TABLE IF EXISTS fresh__stage", "CREATE TABLE fresh__stage (x int)"])
    with pytest.raises(FileExistsError, match="table fresh__stage: exists, and honed uses that name"):
        PgIndex.upload(plain, dsn, table="fresh")
    assert _tables(dsn, "fresh%") == ["fresh__stage"]


def test_a_second_upload_of_a_table_is_refused_with_the_backend_pid(folder: Path, dsn: str) -> None:
    from honed.index.postgres.ownership import ADVISORY_CLASS

    with psycopg.connect(dsn) as other:  # an upload in progress holds this lock
        other.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [ADVISORY_CLASS, "honed:busy"]
        )
        pid = other.info.backend_pid
        message = rf"table busy: another upload to it is running \(database backend pid {pid}\); fix: wait for it to finish"
        with pytest.raises(FileExistsError, match=message):
            PgIndex.upload(folder, dsn, table="busy")
        with pytest.raises(FileExistsError, match=message):
            PgIndex.check_target(dsn, table="busy")
    with PgIndex.upload(folder, dsn, table="busy") as pg:  # the lock went with the transaction
        assert len(pg) == 40 and pg.meta["honed"]["tables"] == [
            "busy", "busy_bm25", "busy_meta", "busy_vocab",
        ]  # fmt: skip


@pytest.mark.parametrize(
    "address",
    [
        "postgresql://postgres:s3cret@127.0.0.1:1/postgres",  # nothing listens on port 1
        "postgresql://postgres:s3cret@/postgres?host=/nonexistent/socket/dir",
    ],
)
def test_unreachable_database(address: str) -> None:
    with pytest.raises(ConnectionError) as caught:
        PgIndex.open(address)
    message = str(caught.value)
    assert message.startswith("could not connect to postgresql://postgres:***@")
    assert "fix: start the PostgreSQL server or check --store" in message
    assert "s3cret" not in message and "\n" not in message


def test_malformed_dsn() -> None:
    with pytest.raises(
        ConnectionError,
        match=r"could not parse the database address .*fix: pass --store postgresql://",
    ):
        PgIndex.open("host=localhost port")
    with pytest.raises(ConnectionError, match="could not parse"):
        PgIndex.upload(
            Index.from_embeddings(np.ones((2, 2)), ["a", "b"], 1),
            "postgresql://h/db?nosuchoption=1",
        )


def test_redact() -> None:
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("host=h password=pw user=u") == "host=h password=*** user=u"
    assert redact("postgresql://h/db?password=pw&x=1") == "postgresql://h/db?password=***&x=1"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("password='a b' host=h") == "password=*** host=h"


def test_missing_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(
        ImportError, match=r"needs the psycopg 3 driver; fix: pip install 'honed\[pg\]'"
    ):
        PgIndex.open("postgresql://localhost/db")


def test_missing_pgvector_extension(server: Any, folder: Path) -> None:
    with psycopg.connect(str(server.get_uri()), autocommit=True) as conn:
        for statement in (
            "DROP DATABASE IF EXISTS novector",
            "DROP DATABASE IF EXISTS appdb",
            "DROP ROLE IF EXISTS app",
            "CREATE DATABASE novector",
            "CREATE ROLE app LOGIN",
            "CREATE DATABASE appdb OWNER app",
        ):
            conn.execute(statement)
    plain = _dsn(server, "novector")
    with pytest.raises(
        ValueError, match="pgvector extension is missing .*fix: run CREATE EXTENSION vector"
    ):
        PgIndex.open(plain)
    with pytest.raises(ValueError, match="pgvector extension is missing .*CREATE EXTENSION vector"):
        PgIndex.upload(folder, plain, create_extension=False)
    # a user who may not create it (pgvector is not a trusted extension) gets the fix
    with pytest.raises(
        ValueError,
        match=r"pgvector extension is missing \(CREATE EXTENSION failed: permission denied.*fix: install pgvector on the server and, as a superuser, run CREATE EXTENSION vector",
    ):
        PgIndex.upload(folder, _dsn(server, "appdb", user="app"))
    # with the right, upload creates it
    with PgIndex.upload(folder, plain, table="ix") as pg:
        assert len(pg) == 40


def test_user_without_create_rights(server: Any, folder: Path) -> None:
    with psycopg.connect(str(server.get_uri()), autocommit=True) as conn:
        for statement in (
            "DROP DATABASE IF EXISTS readonly",
            "DROP ROLE IF EXISTS reader",
            "CREATE ROLE reader LOGIN",
            "CREATE DATABASE readonly",
        ):
            conn.execute(statement)
    with psycopg.connect(_dsn(server, "readonly"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    with pytest.raises(
        PermissionError,
        match=r"permission denied for schema public, so nothing was uploaded; fix: connect as a user who may create tables",
    ):
        PgIndex.upload(folder, _dsn(server, "readonly", user="reader"))


def test_missing_table_and_bad_names(dsn: str, folder: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"no honed index in table absent; fix: upload one with honed index .*--table absent",
    ):
        PgIndex.open(dsn, table="absent")
    for bad in ("Mini", "mini; DROP TABLE mini", "1abc", "x" * 41, ""):
        with pytest.raises(ValueError, match="table name .*expected lower-case letters"):
            PgIndex.open(dsn, table=bad)


def test_search_argument_errors(uploaded: PgIndex, query_emb: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"shortlist \(5\) must be >= k \(10\)"):
        uploaded.search(query_emb, k=10, shortlist=5)
    with pytest.raises(ValueError, match=r"query_emb must be \(n_queries, 32\), got shape \(32,\)"):
        uploaded.search(query_emb[0])
    with pytest.raises(ValueError, match="query_emb contains NaN"):
        uploaded.search(np.full((1, 32), np.nan))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        uploaded.bm25_search(["x"], k=0)
    with pytest.raises(ValueError, match="query_texts has 1 texts but query_emb has 2 rows"):
        uploaded.hybrid_search(["x"], query_emb[:2])


def test_hybrid_needs_bm25_and_fusion(dsn: str, query_emb: np.ndarray) -> None:
    index = Index.from_embeddings(
        np.random.default_rng(1).standard_normal((5, 32)), list("abcde"), 8
    )
    with PgIndex.upload(index, dsn, table="plain", overwrite=True) as pg:
        with pytest.raises(
            ValueError,
            match="has no fusion record; fix: build the index folder with --bm25 --fusion-from",
        ):
            pg.hybrid_search(["q"], query_emb[:1])
        with pytest.raises(
            ValueError, match="has no BM25 side table; fix: build the index folder with --bm25"
        ):
            pg.hybrid_search(["q"], query_emb[:1], fusion=FusionConfig(FusionMethod.RRF, 0.5))


def test_lost_connection(folder: Path, dsn: str, query_emb: np.ndarray) -> None:
    pg = PgIndex.open(dsn, table="mini")
    pid = pg._conn.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(
        ConnectionError, match="lost the connection to .*fix: check that the server is running"
    ):
        pg.search(query_emb[:1])
    pg.close()


# --------------------------------------------------------------------------- CLI


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]) and "Traceback" not in err
    return lines[0]


def test_cli_index_and_search_with_store(
    dsn: str,
    tiny_model_path: Path,
    mini_beir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from honed.cli.main import main

    out = tmp_path / "ix"
    common = ["--store", dsn, "--table", "cli_ix"]
    build = ["index", str(tiny_model_path), str(mini_beir), "--out", str(out)]
    build += ["--shortlist-dim", "16", "--fusion", "zscore", "--dense-weight", "0.7"]
    assert main([*build, *common]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}/" in printed
    assert "uploaded 40 documents to postgresql://postgres:***@" in printed
    assert "cli_ix, cli_ix_meta, cli_ix_bm25, cli_ix_vocab" in printed
    assert "hybrid: zscore, dense weight 0.7" in printed
    next_line = printed.strip().splitlines()[-1]
    assert next_line.startswith(f'next: honed search {out} "your query" --store postgresql://')
    assert next_line.endswith("--table cli_ix --hybrid")

    def top(argv: list[str]) -> list[str]:
        assert main(argv) == 0
        lines = capsys.readouterr().out.splitlines()
        return [line.split()[2] for line in lines[1:]]

    search = ["search", str(out), "vitamin D and bones", "-k", "5", "--shortlist", "20"]
    assert top([*search, *common]) == top(search)
    assert top([*search, *common, "--hybrid"]) == top([*search, "--hybrid"])
    assert main([*search, *common, "--exact-shortlist"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("top 5 of 40 from postgresql://postgres:***@")
    assert "cli_ix (exact shortlist 20 at 16 dims float32, re-ranked at 32)" in header
    # without the folder, the model recorded in the database is used
    gone = ["search", str(tmp_path / "elsewhere"), "vitamin D and bones", "-k", "5"]
    assert len(top([*gone, "--shortlist", "20", *common])) == 5
    # --overwrite replaces the folder and the table
    assert main([*build, "--overwrite", *common]) == 0
    assert "uploaded 40 documents" in capsys.readouterr().out
    # a taken table is refused before any encoding
    fresh = ["index", str(tiny_model_path), str(mini_beir), "--out", str(tmp_path / "new")]
    assert main([*fresh, *common]) == 1
    assert "table cli_ix: exists; fix: pass --overwrite" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["index", "{model}", "{beir}", "--out", "{tmp}/a", "--store", "{dead}"],
            r"could not connect to postgresql://u:\*\*\*@127.0.0.1:1/db: .*fix: start the PostgreSQL server or check --store",
        ),
        (
            ["search", "{tmp}/a", "q", "--store", "{dead}"],
            "could not connect to .*fix: start the PostgreSQL server",
        ),
        (
            ["search", "{tmp}/a", "q", "--store", "{dsn}", "--table", "absent"],
            "no honed index in table absent",
        ),
        (
            ["search", "{tmp}/a", "q", "--store", "{dsn}", "--table", "Bad-Name"],
            "table name 'Bad-Name'",
        ),
    ],
)
def test_cli_store_errors(
    argv: list[str],
    message: str,
    dsn: str,
    tiny_model_path: Path,
    mini_beir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    from honed.cli.main import main

    values = {
        "model": tiny_model_path, "beir": mini_beir, "tmp": tmp_path, "dsn": dsn,
        "dead": "postgresql://u:pw@127.0.0.1:1/db",
    }  # fmt: skip
    assert main([a.format(**values) for a in argv]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert re.search(message, line), line
    assert "pw@" not in line and not (tmp_path / "a").exists()
