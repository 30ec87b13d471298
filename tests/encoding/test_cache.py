"""The on-disk embedding cache: reuse across cache objects (runs), keys, damage, concurrent writers."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from honed.encoding.disk_cache import (
    DiskCache,
    default_cache_dir,
    resolve_cache_dir,
    setting_key,
    text_digest,
)
from honed.encoding.encoder import EmbeddingCache, EncodeStats, encoder_setting

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TEXTS = ["vitamin d and bone", "insulin resistance", "vitamin d and bone", "malaria in africa"]


def _shards(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.npy") if not p.name.endswith(".keys.npy"))


def _unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)  # (n, dim)


# --- reuse across runs -----------------------------------------------------------------------


def test_a_second_cache_reads_every_text_from_disk_bit_for_bit(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    first = EmbeddingCache(precision="fp32", directory=tmp_path)
    cold = first.encode(tiny_model, TEXTS)
    assert first.stats == EncodeStats(requested=4, encoded=3, hits_disk=0)
    second = EmbeddingCache(precision="fp32", directory=tmp_path)  # a new run, same folder
    warm = second.encode(tiny_model, TEXTS)
    assert second.stats == EncodeStats(requested=4, encoded=0, hits_disk=3)
    np.testing.assert_array_equal(warm, cold)  # the very bits, not merely close
    assert warm.dtype == np.float32


def test_only_unseen_texts_are_encoded_and_appended(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    EmbeddingCache(precision="fp32", directory=tmp_path).encode(tiny_model, TEXTS[:2])
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    cache.encode(tiny_model, TEXTS)
    assert cache.stats == EncodeStats(requested=4, encoded=1, hits_disk=2)
    assert len(_shards(tmp_path)) == 2  # append-only: one shard per call that encoded something
    reader = EmbeddingCache(precision="fp32", directory=tmp_path)
    assert reader.encode(tiny_model, TEXTS).shape == (4, 32)
    assert reader.stats.encoded == 0


def test_memory_hits_do_not_touch_the_disk_again(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    cache.encode(tiny_model, TEXTS)
    cache.encode(tiny_model, TEXTS)
    assert cache.stats == EncodeStats(requested=8, encoded=3, hits_disk=0)
    assert len(_shards(tmp_path)) == 1


def test_disk_false_keeps_a_call_in_memory(tiny_model: SentenceTransformer, tmp_path: Path) -> None:
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    cache.encode(tiny_model, TEXTS, disk=False)
    assert not _shards(tmp_path)


def test_persist_stores_what_a_memory_only_call_encoded_once(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    """``honed run`` encodes its tuned corpus off the disk, then persists it for model/'s users."""
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    vectors = cache.encode(tiny_model, TEXTS, disk=False)
    assert cache.persist(tiny_model, TEXTS) == 3 and cache.persist(tiny_model, TEXTS) == 0
    later = EmbeddingCache(precision="fp32", directory=tmp_path)  # e.g. `honed index`
    np.testing.assert_array_equal(later.encode(tiny_model, TEXTS), vectors)
    assert later.stats == EncodeStats(requested=4, encoded=0, hits_disk=3)
    assert EmbeddingCache(precision="fp32").persist(tiny_model, TEXTS) == 0  # no directory


def test_no_directory_means_memory_only(tiny_model: SentenceTransformer, tmp_path: Path) -> None:
    cache = EmbeddingCache(precision="fp32")
    cache.encode(tiny_model, TEXTS)
    assert cache.directory is None and cache.stats.hits_disk == 0


# --- what the key covers -----------------------------------------------------------------------


def test_precision_is_part_of_the_key(tiny_model: SentenceTransformer, tmp_path: Path) -> None:
    EmbeddingCache(precision="fp32", directory=tmp_path).encode(tiny_model, TEXTS)
    bf16 = EmbeddingCache(precision="bf16", directory=tmp_path)
    bf16.encode(tiny_model, TEXTS)
    assert bf16.stats.hits_disk == 0 and bf16.stats.encoded == 3
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_max_seq_length_and_pooling_are_part_of_the_key(tiny_model: SentenceTransformer) -> None:
    base = setting_key(encoder_setting(tiny_model, "fp", "fp32"))
    shorter = copy.deepcopy(tiny_model)
    shorter.max_seq_length = 8
    cls_pooled = copy.deepcopy(tiny_model)
    cls_pooled[1].pooling_mode = "cls"  # same weights, another vector per text
    assert setting_key(encoder_setting(shorter, "fp", "fp32")) != base
    assert setting_key(encoder_setting(cls_pooled, "fp", "fp32")) != base
    assert setting_key(encoder_setting(tiny_model, "other", "fp32")) != base
    assert setting_key(encoder_setting(tiny_model, "fp", "fp32")) == base


def test_meta_json_says_what_the_folder_holds(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    cache.encode(tiny_model, TEXTS)
    (meta_path,) = tmp_path.glob("*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["fingerprint"] == cache.fingerprint(tiny_model)
    assert meta["precision"] == "fp32" and meta["dim"] == 32 and meta["format"] == 1


# --- damage and interruptions ------------------------------------------------------------------


def test_a_truncated_shard_is_removed_and_re_encoded_with_a_warning(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    cold = EmbeddingCache(precision="fp32", directory=tmp_path).encode(tiny_model, TEXTS)
    (shard,) = _shards(tmp_path)
    shard.write_bytes(shard.read_bytes()[:-10])  # e.g. a full disk or an interrupted copy
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    with pytest.warns(UserWarning, match=r"damaged embedding-cache shard \(expected .* bytes"):
        again = cache.encode(tiny_model, TEXTS)
    assert cache.stats.encoded == 3 and cache.stats.hits_disk == 0
    np.testing.assert_allclose(again, cold, atol=1e-6)
    assert not shard.exists()
    assert len(_shards(tmp_path)) == 1  # the re-encoded texts, stored again


def test_a_shard_without_its_keys_file_is_invisible(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    """A process killed between its two renames leaves vectors without keys: never read."""
    EmbeddingCache(precision="fp32", directory=tmp_path).encode(tiny_model, TEXTS)
    (keys,) = tmp_path.rglob("*.keys.npy")
    keys.unlink()
    (keys.parent / ".half-written.npy.123.tmp").write_bytes(b"\x93NUMPY garbage")
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    cache.encode(tiny_model, TEXTS)
    assert cache.stats.encoded == 3 and cache.stats.hits_disk == 0


def test_a_stored_row_that_is_not_a_unit_vector_is_encoded_again(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path, {"fingerprint": "x"})
    rows = _unit_rows(3, 8, seed=0)
    rows[1] = np.nan  # bit rot
    digests = [text_digest(t) for t in ("a", "b", "c")]
    disk.append(digests, rows)
    found = DiskCache(tmp_path, {"fingerprint": "x"}).lookup(digests)
    assert sorted(found) == [0, 2]
    np.testing.assert_array_equal(found[2], rows[2])


def test_an_unwritable_cache_folder_warns_and_the_encoding_goes_on(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = EmbeddingCache(precision="fp32", directory=blocked)
    with pytest.warns(UserWarning, match=r"could not store embeddings .* fix: free space"):
        out = cache.encode(tiny_model, TEXTS)
    assert out.shape == (4, 32) and cache.stats.encoded == 3


def test_append_rejects_mismatched_lengths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected one digest per vector, got 1 digests and 2"):
        DiskCache(tmp_path, {}).append([text_digest("a")], _unit_rows(2, 4, seed=0))


def _read_only(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make ``root`` behave like a read-only mount: creating, renaming or removing fails (EROFS)."""
    import errno
    import os

    def refuse(path: object) -> None:
        if str(path).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    real_open, real_unlink, real_replace = os.open, os.unlink, os.replace

    def ro_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def ro_unlink(path: object, *args: object, **kwargs: object) -> None:
        refuse(path)
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    def ro_replace(src: object, dst: object, *args: object, **kwargs: object) -> None:
        refuse(dst)
        real_replace(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", ro_open)
    monkeypatch.setattr(os, "unlink", ro_unlink)
    monkeypatch.setattr(os, "replace", ro_replace)


def test_a_read_only_cache_with_a_damaged_shard_never_costs_the_run(
    tiny_model: SentenceTransformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#17: the unlink in the shard check raised OSError (read-only file system) and aborted."""
    import warnings

    cold = EmbeddingCache(precision="fp32", directory=tmp_path).encode(tiny_model, TEXTS)
    (shard,) = _shards(tmp_path)
    shard.write_bytes(shard.read_bytes()[:-10])
    _read_only(monkeypatch, tmp_path)
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = cache.encode(tiny_model, TEXTS)
        cache.encode(tiny_model, ["one more text"])  # the setting stays off the disk: no 2nd warning
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "damaged embedding-cache shard (expected" in messages[0]
    assert "that cannot be removed (Read-only file system); this run skips the embedding cache for this setting and encodes in memory; fix: delete" in messages[0]
    np.testing.assert_allclose(again, cold, atol=1e-6)
    assert cache.stats.encoded == 4 and cache.stats.hits_disk == 0 and shard.exists()


def _rewrite(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:  # same size and header: only a checksum can tell
        np.save(handle, array)


def test_shards_with_permuted_or_corrupted_rows_are_refused_and_encoded_again(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    """#17: a shard whose rows were permuted was used as it was (each text got another's vector)."""
    cold = EmbeddingCache(precision="fp32", directory=tmp_path).encode(tiny_model, TEXTS)
    (shard,) = _shards(tmp_path)
    _rewrite(shard, np.load(shard)[::-1].copy())  # unit rows still: the norm check passes
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    with pytest.warns(UserWarning, match=r"damaged embedding-cache shard \(its vectors do not match their recorded sha256\); it was removed"):
        again = cache.encode(tiny_model, TEXTS)
    np.testing.assert_allclose(again, cold, atol=1e-6)
    assert cache.stats.hits_disk == 0 and not shard.exists()
    (shard,) = _shards(tmp_path)  # stored again; now its keys are permuted
    keys = shard.with_name(shard.name.replace(".npy", ".keys.npy"))
    _rewrite(keys, np.load(keys)[::-1].copy())
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    with pytest.warns(UserWarning, match=r"its keys do not match their recorded sha256"):
        np.testing.assert_allclose(cache.encode(tiny_model, TEXTS), cold, atol=1e-6)
    assert cache.stats.hits_disk == 0


def test_a_shard_without_checksums_is_used_with_a_warning(
    tiny_model: SentenceTransformer, tmp_path: Path
) -> None:
    """A cache written before checksums existed keeps working (one warning per setting)."""
    cold = EmbeddingCache(precision="fp32", directory=tmp_path).encode(tiny_model, TEXTS)
    (record,) = [p for p in tmp_path.rglob("*.json") if p.name != "meta.json"]  # the checksums
    record.unlink()
    cache = EmbeddingCache(precision="fp32", directory=tmp_path)
    with pytest.warns(UserWarning, match=r"shards without checksums \(written by an older honed\) are used unverified; fix: delete"):
        again = cache.encode(tiny_model, TEXTS)
    np.testing.assert_array_equal(again, cold)
    assert cache.stats.hits_disk == 3 and cache.stats.encoded == 0


# --- concurrent writers -----------------------------------------------------------------------

_WRITER = """
import sys
import numpy as np
from honed.encoding.disk_cache import DiskCache, text_digest
root, worker = sys.argv[1], int(sys.argv[2])
disk = DiskCache(root, {"fingerprint": "shared"})
for shard in range(20):
    texts = [f"text {i}" for i in range(shard * 10, shard * 10 + 10)]
    rows = np.zeros((10, 4), dtype=np.float32)
    rows[:, 0] = 1.0
    rows[:, 1 + worker] = 0.0  # identical vectors from both writers: any copy is right
    disk.append([text_digest(t) for t in texts], rows)
    disk.lookup([text_digest("text 0")])  # read while the other process writes
"""


def test_two_processes_writing_one_folder_leave_it_consistent(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(w)]) for w in (0, 1)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    disk = DiskCache(tmp_path, {"fingerprint": "shared"})
    assert disk.stored() == 2 * 200  # both wrote every text: duplicates, never a broken shard
    found = disk.lookup([text_digest(f"text {i}") for i in range(200)])
    assert sorted(found) == list(range(200))
    assert not list(tmp_path.rglob("*.tmp"))


def test_concurrent_writers_leave_only_shards_that_pass_their_checksums(tmp_path: Path) -> None:
    import warnings

    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(w)]) for w in (0, 1, 0)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    disk = DiskCache(tmp_path, {"fingerprint": "shared"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no damaged, unverified or skipped shard
        found = disk.lookup([text_digest(f"text {i}") for i in range(200)])
    assert sorted(found) == list(range(200)) and disk.stored() == 3 * 200
    assert len(list(tmp_path.rglob("*.keys.npy"))) == 60 and not list(tmp_path.rglob(".honed.lock"))


# --- where the cache lives ---------------------------------------------------------------------


def test_default_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HONED_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert resolve_cache_dir("auto") == tmp_path / "c"
    monkeypatch.delenv("HONED_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "honed" / "embeddings"
    assert resolve_cache_dir(None) is None
    assert resolve_cache_dir(str(tmp_path)) == tmp_path


def test_resolve_cache_dir_rejects_an_empty_string() -> None:
    with pytest.raises(ValueError, match=r"cache_dir: expected 'auto', a folder or None"):
        resolve_cache_dir("")


def test_run_config_rejects_an_empty_cache_dir() -> None:
    from honed.pipeline.config import RunConfig

    with pytest.raises(ValueError, match=r"cache_dir: expected 'auto'"):
        RunConfig(data="d", out="o", cache_dir="")


def test_cli_run_takes_cache_dir_or_no_cache() -> None:
    from honed.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "d", "--out", "o"]).cache_dir == "auto"
    assert parser.parse_args(["run", "d", "--out", "o", "--cache-dir", "x"]).cache_dir == "x"
    assert parser.parse_args(["run", "d", "--out", "o", "--no-cache"]).no_cache
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "d", "--out", "o", "--no-cache", "--cache-dir", "x"])


# --- honed run ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_run_encodes_no_base_text(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    """Same data and base model twice: the second run reads the base encodings from disk."""
    from honed.mining.config import MiningConfig
    from honed.pipeline.config import RunConfig
    from honed.pipeline.runner import run_pipeline
    from honed.training.config import TrainConfig

    def run(out: str) -> tuple[dict[str, int], dict[str, object]]:
        config = RunConfig(
            data=str(mini_beir),
            out=str(tmp_path / out),
            base_model=str(tiny_model_path),
            dev_fraction=0.25,
            min_dev_queries=4,
            precision="fp32",
            mining=MiningConfig(num_negatives=2, depth=10),
            training=TrainConfig(epochs=1, batch_size=8, mini_batch_size=4, precision="fp32"),
            cache_dir=str(tmp_path / "cache"),
        )
        result = run_pipeline(config)
        return result.encode_stats, result.metrics["base"]

    cold, cold_base = run("a")
    warm, warm_base = run("b")
    n_docs, n_queries = 40, 24  # the mini BEIR set; every query is in some split
    assert cold["hits_disk"] == 0
    assert warm["hits_disk"] == n_docs + n_queries
    assert cold["encoded"] - warm["encoded"] == n_docs + n_queries  # no corpus text, no query
    assert warm_base == cold_base  # the very same base vectors, so the very same metrics
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["cache_dir"] == str(tmp_path / "cache")
    assert config["embedding_cache_dir"] == str(tmp_path / "cache")
    # only the base model is kept on disk: the tuned weights are new in every run
    # the base model's encodings, and the saved tuned model's corpus (the same weights in both
    # runs: same seed, same rows), which `honed index a/model` reads instead of encoding
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2
