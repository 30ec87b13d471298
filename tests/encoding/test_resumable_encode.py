"""Nothing computed is thrown away: encoding commits to the disk cache as it goes (#15).

An interrupted encoding (Ctrl-C, or SIGKILL) leaves the batches it finished in the cache; the
next encoding of the same texts encodes only the rest, and its vectors equal an uninterrupted
encoding's bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from honed.encoding import batches
from honed.encoding.batches import encode_in_batches, length_order
from honed.encoding.encoder import EmbeddingCache

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BATCH = 4


def _texts(mini_beir: Path) -> list[str]:
    rows = [json.loads(line) for line in (mini_beir / "corpus.jsonl").read_text().splitlines()]
    return [f"{row.get('title', '')} {row['text']}" for row in rows]


def _stored_rows(root: Path) -> int:
    """Rows in the committed shards under ``root`` (a shard counts once its keys file exists)."""
    rows = 0
    for keys in root.rglob("*.keys.npy"):
        record = json.loads(keys.with_name(keys.name.replace(".keys.npy", ".json")).read_text())
        rows += int(record["rows"])
    return rows


class _Counting:
    """Wraps ``model.encode``: counts calls and texts, raises ``KeyboardInterrupt`` on call ``stop``."""

    def __init__(self, model: SentenceTransformer, stop: int | None = None) -> None:
        self.real, self.stop, self.calls, self.texts = model.encode, stop, 0, 0

    def __call__(self, texts: list[str], **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        self.texts += len(texts)
        return self.real(texts, **kwargs)


# --- the batch loop ---------------------------------------------------------------------------


def test_length_order_is_stable_longest_first() -> None:
    assert length_order(["bb", "a", "cc", "ddd", "e"]) == [3, 0, 2, 1, 4]


def test_encode_in_batches_returns_input_order_and_commits_every_batch() -> None:
    texts = ["a", "bbbb", "cc", "ddd", "eeeee"]
    commits: list[list[int]] = []
    progress: list[int] = []
    vectors = encode_in_batches(
        lambda batch: np.array([[len(t), 0.0] for t in batch]), texts, 2,
        progress=progress.append, commit=lambda pos, vec: commits.append(pos), commit_seconds=0,
    )
    assert vectors[:, 0].tolist() == [1, 4, 2, 3, 5]
    assert commits == [[1, 4], [2, 3], [0]] and progress == [2, 2, 1]  # longest batch first


def test_an_interrupted_loop_commits_what_it_finished_before_stopping() -> None:
    commits: list[list[int]] = []

    def encode(batch: list[str]) -> np.ndarray:
        if "x" in batch:
            raise KeyboardInterrupt
        return np.ones((len(batch), 2))

    with pytest.raises(KeyboardInterrupt):  # commit_seconds large: only the final flush commits
        encode_in_batches(encode, ["aaa", "bbb", "x"], 1, commit=lambda p, v: commits.append(p),
                          commit_seconds=3600)
    assert commits == [[0, 1]]


def test_encode_in_batches_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="batch_size: expected a positive integer, got 0"):
        encode_in_batches(lambda b: np.ones((len(b), 1)), ["a"], 0)
    with pytest.raises(ValueError, match="texts: expected at least one text, got none"):
        encode_in_batches(lambda b: np.ones((len(b), 1)), [], 2)


# --- the cache: Ctrl-C in the middle, then again ------------------------------------------------


def test_an_interrupted_encoding_resumes_without_re_encoding(
    tiny_model: SentenceTransformer, mini_beir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = _texts(mini_beir)
    n_batches = -(-len(set(texts)) // BATCH)
    reference = EmbeddingCache(BATCH, "fp32", tmp_path / "ref", commit_seconds=0)
    uninterrupted = reference.encode(tiny_model, texts)
    stop = 4  # Ctrl-C during the 4th batch: 3 batches were done
    counting = _Counting(tiny_model, stop)
    monkeypatch.setattr(tiny_model, "encode", counting)
    with pytest.raises(KeyboardInterrupt):
        EmbeddingCache(BATCH, "fp32", tmp_path / "c", commit_seconds=0).encode(tiny_model, texts)
    assert _stored_rows(tmp_path / "c") == (stop - 1) * BATCH  # kept on disk
    counting = _Counting(tiny_model)
    monkeypatch.setattr(tiny_model, "encode", counting)
    again = EmbeddingCache(BATCH, "fp32", tmp_path / "c", commit_seconds=0)
    resumed = again.encode(tiny_model, texts)
    assert counting.texts == len(set(texts)) - (stop - 1) * BATCH  # only the missing texts
    assert counting.calls == n_batches - (stop - 1)
    assert again.stats.hits_disk == (stop - 1) * BATCH
    np.testing.assert_array_equal(resumed, uninterrupted)  # the very bits


def test_commits_follow_commit_seconds(
    tiny_model: SentenceTransformer, mini_beir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = _texts(mini_beir)
    monkeypatch.setattr(batches, "COMMIT_SECONDS", 3600.0)  # the default, read at call time
    EmbeddingCache(BATCH, "fp32", tmp_path).encode(tiny_model, texts)
    assert len(list(tmp_path.rglob("*.keys.npy"))) == 1  # one commit at the end
    monkeypatch.setattr(batches, "COMMIT_SECONDS", 0.0)
    EmbeddingCache(BATCH, "fp32", tmp_path / "each").encode(tiny_model, texts)
    assert len(list((tmp_path / "each").rglob("*.keys.npy"))) == -(-len(set(texts)) // BATCH)


def test_progress_advances_with_every_batch(
    tiny_model: SentenceTransformer, mini_beir: Path
) -> None:
    texts = _texts(mini_beir)
    steps: list[int] = []
    cache = EmbeddingCache(BATCH, "fp32")
    cache.encode(tiny_model, texts[:10], progress=steps.append)
    assert steps == [4, 4, 2]
    steps.clear()
    cache.encode(tiny_model, texts[:12], progress=steps.append)
    assert steps == [10, 2]  # the 10 already in memory at once, then the new batch


def test_memory_false_keeps_no_vectors_between_calls(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    cache = EmbeddingCache(BATCH, "fp32", tmp_path, memory=False)
    first = cache.encode(tiny_model, ["one text", "another"])
    second = cache.encode(tiny_model, ["one text", "another"])
    np.testing.assert_array_equal(first, second)
    assert cache.stats.hits_disk == 2 and cache.stats.encoded == 2  # read back from disk


# --- SIGKILL: a real process killed in the middle of its encoding ------------------------------

CHILD = r"""
import os, signal, sys
from honed.encoding.encoder import EmbeddingCache, load_model
from honed.encoding.batches import length_order

model, folder, stop = load_model(sys.argv[1], "cpu"), sys.argv[2], int(sys.argv[3])
texts = sys.stdin.read().split("\n")
real, calls = model.encode, [0]

def encode(batch, **kwargs):
    calls[0] += 1
    if calls[0] == stop:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no final flush
    return real(batch, **kwargs)

model.encode = encode
EmbeddingCache(4, "fp32", folder, commit_seconds=0).encode(model, texts)
"""


@pytest.mark.slow
def test_a_killed_encoding_keeps_its_committed_batches(
    tiny_model: SentenceTransformer, tiny_model_path: Path, mini_beir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = _texts(mini_beir)
    stop = 5
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tiny_model_path), str(tmp_path / "c"), str(stop)],
        input="\n".join(texts), text=True, env=env, capture_output=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert _stored_rows(tmp_path / "c") == (stop - 1) * BATCH
    counting = _Counting(tiny_model)
    monkeypatch.setattr(tiny_model, "encode", counting)
    resumed = EmbeddingCache(BATCH, "fp32", tmp_path / "c", commit_seconds=0).encode(
        tiny_model, texts
    )
    assert counting.texts == len(set(texts)) - (stop - 1) * BATCH
    reference = EmbeddingCache(BATCH, "fp32", commit_seconds=0).encode(tiny_model, texts)
    np.testing.assert_array_equal(resumed, reference)
