"""Streaming, resumable index builds: the corpus reader, resume after a failure or a kill, refusals."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import honed.index.build
from honed.cli.main import main
from honed.data.corpus import iter_corpus, read_corpus
from honed.data.errors import DataError
from honed.encoding.encoder import encode_texts, resolve_precision
from honed.index.build import build_folder, scan_corpus
from honed.index.index import Index
from honed.index.options import BuildOptions
from honed.index.partial import partial_path, partial_rows

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

SD, BATCH = 16, 16  # 40 documents: batches of 16, 16 and 8
Docs = tuple[list[str], list[str]]  # ids, texts


@pytest.fixture(scope="module")
def corpus(mini_beir: Path) -> Docs:
    return read_corpus(mini_beir)


@pytest.fixture(scope="module")
def reference(tiny_model: SentenceTransformer, corpus: Docs, tmp_path_factory) -> Path:
    """An uninterrupted build: what every resumed build must equal, byte for byte."""
    out = tmp_path_factory.mktemp("ref") / "ix"
    Index.build(tiny_model, *corpus, out, shortlist_dim=SD, precision="int8", batch_size=BATCH)
    return out


def _same_files(one: Path, other: Path) -> None:
    for name in ("full.npy", "ids.json", "texts.jsonl", "short.npy", "short_scale.npy"):
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


def _fail_at(monkeypatch: pytest.MonkeyPatch, model: SentenceTransformer, call: int) -> list[int]:
    """Make the ``call``-th encoding raise, as a crash mid-build would; returns the batch sizes."""
    calls: list[int] = []
    count = iter(range(1, 1_000))

    def encode(_model: object, texts: list[str], **kwargs: object) -> np.ndarray:
        calls.append(len(texts))
        if next(count) == call:  # once: the resumed build encodes normally
            raise RuntimeError("simulated crash mid-build")
        return encode_texts(model, texts, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(honed.index.build, "encode_texts", encode)
    return calls


# --------------------------------------------------------------------------- corpus reader


def test_iter_corpus_streams_what_read_corpus_reads(mini_beir: Path, corpus: Docs) -> None:
    assert list(iter_corpus(mini_beir)) == list(zip(*corpus))
    assert list(iter_corpus(mini_beir / "corpus.jsonl"))[0][0] == "d01"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"_id": "a", "text": "x"}', '{"_id": "b", "text": "y"}', '{"_id": "a", "text": "z"}'],
            r"corpus.jsonl:3: duplicate _id 'a' \(expected unique ids, got the same id on lines 1 "
            r"and 3\); fix: remove one of the two lines",
        ),
        (['{"_id": "a", "text": "x"}', "{oops"], r"corpus.jsonl:2: malformed JSON"),
        (['{"_id": "a"}'], r"corpus.jsonl:1: bad 'text'"),
        ([""], r"corpus.jsonl: no documents"),
    ],
)
def test_iter_corpus_errors(lines: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        list(iter_corpus(tmp_path))


def test_iter_corpus_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"corpus.jsonl: does not exist .*fix: pass"):
        list(iter_corpus(tmp_path))


def test_build_from_corpus_equals_build(
    tiny_model: SentenceTransformer, mini_beir: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ix"
    index = Index.build_from_corpus(
        tiny_model, mini_beir, out, shortlist_dim=SD, precision="int8", batch_size=BATCH
    )
    _same_files(out, reference)
    assert index.info.count == 40 and not partial_path(out).exists()


# --------------------------------------------------------------------------- resume


def test_resume_after_a_failure_is_byte_identical(
    tiny_model: SentenceTransformer,
    corpus: Docs,
    reference: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "ix"
    settings: dict[str, Any] = {"shortlist_dim": SD, "precision": "int8", "batch_size": BATCH}
    calls = _fail_at(monkeypatch, tiny_model, 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Index.build(tiny_model, *corpus, out, **settings)
    assert not out.exists() and partial_rows(out) == (16, 40)
    with pytest.raises(
        FileExistsError,
        match=r"ix.partial: left by an interrupted build \(16 of 40 documents encoded\); fix: "
        r"pass --resume to continue it, or delete .*ix.partial to start over",
    ):
        Index.build(tiny_model, *corpus, out, **settings)
    calls.clear()
    Index.build(tiny_model, *corpus, out, resume=True, **settings)
    assert calls == [16, 8]  # only the batches after the last completed one
    _same_files(out, reference)
    assert not partial_path(out).exists()


def test_resume_refuses_other_settings(
    tiny_model: SentenceTransformer,
    tiny_model_path: Path,
    corpus: Docs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "ix"
    _fail_at(monkeypatch, tiny_model, 2)
    with pytest.raises(RuntimeError):
        Index.build(tiny_model, *corpus, out, shortlist_dim=SD, batch_size=BATCH)
    ids, texts = corpus
    with pytest.raises(
        ValueError,
        match=r"ix.partial: cannot resume, it was started with another --batch-size \(16 then, 8 "
        r"now\); fix: resume with the same model, corpus, --batch-size and --encode-precision, "
        r"or delete .*ix.partial to start over",
    ):
        Index.build(tiny_model, ids, texts, out, shortlist_dim=SD, batch_size=8, resume=True)
    with pytest.raises(ValueError, match=r"another corpus \(hash of ids and texts\)"):
        Index.build(
            tiny_model, ids, [*texts[:-1], "edited"], out, SD, batch_size=BATCH, resume=True
        )
    other = SentenceTransformer(str(tiny_model_path), device="cpu")
    next(iter(other.parameters())).data.add_(0.01)
    with pytest.raises(ValueError, match=r"another model \(fingerprint\)"):
        Index.build(other, ids, texts, out, SD, batch_size=BATCH, resume=True)
    auto = resolve_precision("auto", "cpu").value  # recorded as what "auto" means here
    other_precision = "fp32" if auto == "bf16" else "bf16"
    with pytest.raises(
        ValueError, match=rf"another --encode-precision \('{auto}' then, '{other_precision}' now\)"
    ):
        Index.build(
            tiny_model, ids, texts, out, SD, batch_size=BATCH, encode_precision=other_precision,
            resume=True,
        )  # fmt: skip
    assert partial_rows(out) == (16, 40)  # refusals leave the interrupted build as it was


def test_a_good_index_survives_a_failed_overwrite(
    tiny_model: SentenceTransformer,
    corpus: Docs,
    reference: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "ix"
    Index.build(tiny_model, *corpus, out, shortlist_dim=8, precision="binary")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fail_at(monkeypatch, tiny_model, 3)
    settings: dict[str, Any] = {
        "shortlist_dim": SD,
        "precision": "int8",
        "batch_size": BATCH,
        "overwrite": True,
    }
    with pytest.raises(RuntimeError):
        Index.build(tiny_model, *corpus, out, **settings)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()
    Index.build(tiny_model, *corpus, out, resume=True, **settings)
    _same_files(out, reference)


def test_resume_without_a_partial_builds_and_a_stranger_is_refused(
    tiny_model: SentenceTransformer, corpus: Docs, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ix"
    Index.build(tiny_model, *corpus, out, SD, "int8", batch_size=BATCH, resume=True)
    _same_files(out, reference)
    other = tmp_path / "other"
    partial_path(other).mkdir()
    (partial_path(other) / "mine.txt").write_text("user file")
    with pytest.raises(
        FileExistsError, match=r"other.partial: exists but has no readable progress"
    ):
        Index.build(tiny_model, *corpus, other, SD, resume=True)
    assert (partial_path(other) / "mine.txt").read_text() == "user file"


# --------------------------------------------------------------------------- folder mechanics


def _fake_encode(texts: list[str], progress: Callable[[int], object] | None = None) -> np.ndarray:
    """Deterministic (n, 8) vectors from the texts' hashes: no model needed."""
    if progress is not None:
        progress(len(texts))
    seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in texts]
    return np.stack([np.random.default_rng(s).standard_normal(8) for s in seeds])


def _fake_build(
    out: Path,
    rows: list[tuple[str, str]],
    corpus: Callable[[], Iterable[tuple[str, str]]] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> None:
    """Build an index of ``rows`` (reading ``corpus`` when given) in batches of 3."""
    from honed.index.store import new_info

    scan = scan_corpus(lambda: rows)
    info = new_info("fp", "", 8, 4, "float32", scan.count)
    options = BuildOptions(batch_size=3, resume=resume, overwrite=overwrite)
    build_folder(out, corpus or (lambda: rows), scan, _fake_encode, info, options)


def test_lines_after_the_last_recorded_batch_are_dropped(tmp_path: Path) -> None:
    rows = [(f"é{i}", f"text {i}") for i in range(10)]  # a non-ASCII id: ids.json escapes it
    _fake_build(tmp_path / "ref", rows)
    assert (tmp_path / "ref" / "ids.json").read_text() == json.dumps([i for i, _ in rows])
    out = tmp_path / "ix"
    with pytest.raises(KeyboardInterrupt):
        _fake_build(out, rows, corpus=lambda: _interrupted(rows, 7))
    partial = partial_path(out)
    with (partial / "index" / "texts.jsonl").open("a") as handle:  # a batch cut off before its
        handle.write('"half a line')  # progress.json was written
    assert partial_rows(out) == (6, 10)
    _fake_build(out, rows, resume=True)
    for name in ("full.npy", "ids.json", "texts.jsonl", "short.npy"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def _interrupted(rows: list[tuple[str, str]], at: int) -> Iterator[tuple[str, str]]:
    for i, row in enumerate(rows):
        if i == at:
            raise KeyboardInterrupt
        yield row


def test_a_damaged_partial_is_refused(tmp_path: Path) -> None:
    rows = [(f"d{i}", f"text {i}") for i in range(10)]
    out = tmp_path / "ix"
    with pytest.raises(KeyboardInterrupt):
        _fake_build(out, rows, corpus=lambda: _interrupted(rows, 7))
    (partial_path(out) / "ids.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"ids.jsonl: shorter than progress.json records .*delete"):
        _fake_build(out, rows, resume=True)


def test_a_corpus_that_changes_during_the_build_is_refused(tmp_path: Path) -> None:
    rows = [(f"d{i}", f"text {i}") for i in range(10)]
    out = tmp_path / "ix"
    with pytest.raises(ValueError, match=r"the corpus changed while it was indexed \(10 documents"):
        _fake_build(out, rows, corpus=lambda: [*rows, ("d10", "late")])
    assert not out.exists() and not partial_path(out).exists()


def test_a_leftover_of_a_finished_build_is_cleared(tmp_path: Path) -> None:
    rows = [(f"d{i}", f"text {i}") for i in range(4)]
    out = tmp_path / "ix"
    _fake_build(out, rows)
    partial_path(out).mkdir()  # killed after the rename, before the partial folder went
    (partial_path(out) / "progress.json").write_text(
        json.dumps({"settings": {}, "rows": 4, "texts_bytes": 0, "ids_bytes": 0})
    )
    assert partial_rows(out) is None
    _fake_build(out, rows, overwrite=True)
    assert not partial_path(out).exists()


# --------------------------------------------------------------------------- kill + CLI

KILL = """
import os, signal, sys
import honed.{module} as target
real, calls = target.{name}, []
def killer(*args, **kwargs):
    calls.append(1)
    if len(calls) == {call}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
target.{name} = killer
from honed.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "name", "call", "rows"),
    [
        ("index.build", "encode_texts", 3, 8),  # mid-encoding, 2 batches done
        ("index.build", "write_progress", 3, 8),  # batch 3 written, its progress.json not
        ("index.store", "_write_short", 1, 40),  # every row encoded, deriving the fast tier
    ],
)
def test_cli_resume_after_sigkill(
    module: str,
    name: str,
    call: int,
    rows: int,
    tiny_model_path: Path,
    mini_beir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, ref = tmp_path / "ix", tmp_path / "ref"
    argv = [
        "index",
        str(tiny_model_path),
        str(mini_beir),
        "--shortlist-dim",
        "16",
        "--batch-size",
        "4",
        "--no-cache",  # the partial folder alone (with the cache: the next test)
    ]
    script = KILL.format(module=module, name=name, call=call)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv, "--out", str(out)], env=env, capture_output=True
    )
    assert proc.returncode == -9 and not out.exists()
    assert partial_rows(out) == (rows, 40)
    assert main([*argv, "--out", str(out)]) == 1
    assert "fix: pass --resume to continue it" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    assert (
        f"resuming {partial_path(out)}: {rows:,} of 40 documents encoded" in capsys.readouterr().out
    )
    assert main([*argv, "--out", str(ref)]) == 0
    for file in ("full.npy", "ids.json", "texts.jsonl", "short.npy"):
        assert (out / file).read_bytes() == (ref / file).read_bytes(), file
    assert not partial_path(out).exists()


CACHED_KILL = """
import os, signal, sys
import honed.encoding.batches, honed.encoding.encoder as target
honed.encoding.batches.COMMIT_SECONDS = 0.0  # commit every forward pass
real, calls = target.encode_texts, []
def killer(*args, **kwargs):
    calls.append(1)
    if len(calls) == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
target.encode_texts = killer
import honed.index.build
honed.index.build.ENCODE_BATCH = 8  # 40 documents: 5 forward passes in one committed batch
from honed.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_cli_index_killed_mid_batch_resumes_from_the_embedding_cache(
    tiny_model_path: Path, mini_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The partial folder commits every --batch-size documents; the cache every forward pass."""
    import honed.encoding.encoder

    out, cache = tmp_path / "ix", tmp_path / "cache"
    argv = ["index", str(tiny_model_path), str(mini_beir), "--shortlist-dim", "16",
            "--out", str(out), "--cache-dir", str(cache)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CACHED_KILL, *argv], env=env, capture_output=True)
    assert proc.returncode == -9 and partial_rows(out) == (0, 40)  # nothing in the partial folder
    texts: list[int] = []
    real = honed.encoding.encoder.encode_texts

    def counting(model: Any, batch: list[str], *args: Any, **kwargs: Any) -> np.ndarray:
        texts.append(len(batch))
        return real(model, batch, *args, **kwargs)

    monkeypatch.setattr(honed.encoding.encoder, "encode_texts", counting)
    monkeypatch.setattr(honed.index.build, "ENCODE_BATCH", 8)
    assert main([*argv, "--resume"]) == 0
    assert sum(texts) == 40 - 3 * 8  # the 3 forward passes done before the kill are not redone
    capsys.readouterr()
    reference = tmp_path / "ref"
    assert main([*argv[:-4], "--out", str(reference), "--no-cache"]) == 0
    for name in ("full.npy", "ids.json", "texts.jsonl", "short.npy"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_the_index_bar_moves_with_every_forward_pass(
    tiny_model: SentenceTransformer, corpus: Docs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One committed batch of 40 documents, 5 forward passes of 8: the bar moves 5 times."""
    import tqdm.auto

    updates: list[int] = []

    class Recording(tqdm.auto.tqdm):  # type: ignore[misc,name-defined]
        def update(self, n: float | None = 1) -> bool | None:
            if self.desc == "index":
                updates.append(int(n or 0))
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    monkeypatch.setattr(honed.index.build, "ENCODE_BATCH", 8)
    Index.build(tiny_model, *corpus, tmp_path / "ix", shortlist_dim=SD, batch_size=40,
                show_progress_bar=True)
    assert updates == [8, 8, 8, 8, 8]
