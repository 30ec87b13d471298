"""The on-disk half of the embedding cache: embeddings of one encoder setting, reused across runs.

Layout, under the cache root (``$HONED_CACHE_DIR``, else ``~/.cache/honed/embeddings``)::

    ROOT/<setting key>/meta.json              what the key stands for (model fingerprint, ...)
    ROOT/<setting key>/<shard>.npy            float32 (rows, dim), L2-normalised
    ROOT/<setting key>/<shard>.json           sha256 of the two .npy files, written before keys
    ROOT/<setting key>/<shard>.keys.npy       uint8 (rows, 32): sha256 of each row's text

The setting key hashes everything that changes an embedding (:func:`setting_key`), so one
folder only ever holds vectors that a fresh encode with that setting would produce. Shards are
append-only and written as temporary files renamed into place, vectors first and keys last: a
shard is visible only once its keys file exists, so a reader never sees a half-written shard and
two processes writing the same folder never touch each other's files (each shard has a unique
name). Readers take no lock, so any number of runs share a cache; the writes of a shard and the
removal of a damaged one hold the folder's lock (:func:`honed.files.folder_lock`) for the
milliseconds they take, waiting for another writer rather than refusing.

A shard whose size does not match its header (a truncated copy, a full disk), or whose bytes do
not match the checksums recorded beside it (permuted or corrupted rows), is reported with a
warning, removed, and its texts are encoded again; the vectors are checked the first time a run
reads them, the keys when the shard is listed. A shard written before checksums existed is used
with a warning. A cache problem never costs the run: when a damaged shard cannot be removed (a
read-only cache), the run warns once and encodes in memory, without the disk cache for that
setting.

Vectors are stored as float32, not float16: a run that reads them gets the very bits a fresh
encode gave, so a warm run ranks (and mines, and reports) exactly as the cold one did. At 384
dims that is 1.5 KB per text, 1.5 GB per million texts.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from honed.encoding.shard_files import npy_shape, save_atomic, save_tmp
from honed.files import FolderLockedError, folder_lock, sha256_file

__all__ = [
    "CACHE_DIR_ENV",
    "FORMAT_VERSION",
    "DiskCache",
    "default_cache_dir",
    "encoder_setting",
    "resolve_cache_dir",
    "setting_key",
    "text_digest",
]

CACHE_DIR_ENV = "HONED_CACHE_DIR"
FORMAT_VERSION = 1  # bump when the layout or the meaning of a key changes
DIGEST_BYTES = 32  # sha256
LOCK_WAIT_S = 30.0  # a shard write takes milliseconds: wait for another writer, then give up
_WRITING = "an embedding-cache write"


def default_cache_dir() -> Path:
    """``$HONED_CACHE_DIR`` if set, else ``~/.cache/honed/embeddings``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "honed" / "embeddings"


def resolve_cache_dir(value: str | Path | None) -> Path | None:
    """``"auto"`` -> :func:`default_cache_dir`; ``None`` -> no on-disk cache; else the folder.

    Raises:
        ValueError: ``value`` is an empty string.
    """
    if value is None:
        return None
    if str(value) == "":
        raise ValueError(
            "cache_dir: expected 'auto', a folder or None (no on-disk cache), got ''; "
            "fix: pass --cache-dir DIR, or --no-cache"
        )
    return default_cache_dir() if str(value) == "auto" else Path(value).expanduser()


def text_digest(text: str) -> bytes:
    """sha256 of the UTF-8 text: the key of its embedding in memory and on disk."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def setting_key(setting: Mapping[str, Any]) -> str:
    """A short hash of an encoder setting (a JSON-able mapping) plus :data:`FORMAT_VERSION`."""
    blob = json.dumps({**setting, "format": FORMAT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def encoder_setting(model: Any, fingerprint: str, precision: str) -> dict[str, Any]:
    """Everything that decides the vector a text gets from a sentence-transformers ``model``.

    The weights' fingerprint (which covers ``max_seq_length``), the precision actually used
    (``"fp32"`` or ``"bf16"``, never ``"auto"``) and the device type (bf16 on a CPU and on a GPU
    round differently), the modules' settings (pooling mode, ...), prompt, truncation,
    normalisation, and sentence-transformers' major version (its encode could change between
    majors). :func:`setting_key` of it names the folder of the on-disk cache.
    """
    import sentence_transformers

    device = str(model.device)
    prompts = getattr(model, "prompts", None) or {}
    default_prompt = getattr(model, "default_prompt_name", None)
    modules: list[list[Any]] = []
    for module in model:
        config = getattr(module, "get_config_dict", None)
        modules.append([type(module).__name__, config() if callable(config) else None])
    return {
        "fingerprint": fingerprint,
        "precision": precision,
        "device_type": device.split(":")[0],
        "max_seq_length": model.max_seq_length,
        "normalize": True,
        "prompt": prompts.get(default_prompt) if default_prompt else None,
        "truncate_dim": getattr(model, "truncate_dim", None),
        "modules": modules,
        "tokenizer": type(getattr(model, "tokenizer", None)).__name__,
        "sentence_transformers": sentence_transformers.__version__.split(".")[0],
    }


@dataclass(frozen=True)
class _Index:
    """Every key on disk, sorted, with where its vector lives: ``keys[i]`` -> (names[shard[i]], row[i])."""

    listed: tuple[str, ...]  # the shard listing it was built from (a new listing -> rebuild)
    names: tuple[str, ...]  # the sound shards among them, oldest first (names start with the time)
    keys: np.ndarray  # (n,) V32, sorted
    shard: np.ndarray  # (n,) int32
    row: np.ndarray  # (n,) int64


class DiskCache:
    """Embeddings of one encoder setting in ``root/<setting key>/``, in append-only shards.

    Example:
        >>> disk = DiskCache(Path("~/.cache/honed/embeddings"), {"fingerprint": "ab12", "precision": "fp32"})
        >>> found = disk.lookup([text_digest("a"), text_digest("b")])   # {position: vector}
        >>> disk.append([text_digest("c")], vectors)                     # vectors: (1, dim)
    """

    def __init__(self, root: str | Path, setting: Mapping[str, Any]) -> None:
        self.setting = dict(setting)
        self.folder = Path(root) / setting_key(self.setting)
        self._index: _Index | None = None
        self._verified: set[str] = set()  # shards whose vectors matched their checksum
        self._unverified_warned = False
        self.disabled: str | None = None  # why this run skips the disk cache for this setting

    def _disable(self, reason: str) -> None:
        """Skip the disk cache for this setting from now on, with one warning."""
        self.disabled = reason
        warnings.warn(
            f"{reason}; this run skips the embedding cache for this setting and encodes in "
            f"memory; fix: delete {self.folder}, or pass --cache-dir DIR elsewhere, or --no-cache",
            stacklevel=4,
        )

    def _discard(self, name: str, problem: str) -> None:
        """Remove a damaged shard (warning), or disable the cache when it cannot be removed."""
        vec_path = self.folder / f"{name}.npy"
        paths = [self.folder / f"{name}{end}" for end in (".keys.npy", ".npy", ".json")]
        try:
            with folder_lock(self.folder, _WRITING, wait=LOCK_WAIT_S):
                for path in paths:  # keys first: the shard disappears for other readers
                    path.unlink(missing_ok=True)
        except FolderLockedError:  # another writer is stuck: leave it, skip the shard this time
            warnings.warn(f"{vec_path}: damaged embedding-cache shard ({problem}); skipped", stacklevel=4)
            return
        except OSError as err:  # a read-only cache: the shard stays, so the cache cannot be used
            self._disable(
                f"{vec_path}: damaged embedding-cache shard ({problem}) that cannot be removed "
                f"({err.strerror or err})"
            )
            return
        warnings.warn(
            f"{vec_path}: damaged embedding-cache shard ({problem}); it was removed and its texts "
            "will be encoded again",
            stacklevel=4,
        )

    def _recorded(self, name: str) -> dict[str, str] | None:
        """The shard's recorded checksums, or None for a shard written before they existed."""
        try:
            record = json.loads((self.folder / f"{name}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: matches nothing, so the shard is treated as damaged
        sha = record.get("sha256") if isinstance(record, dict) else None
        return sha if isinstance(sha, dict) else {}

    def _shard_names(self) -> tuple[str, ...]:
        if not self.folder.is_dir():
            return ()
        suffix = ".keys.npy"
        return tuple(sorted(p.name[: -len(suffix)] for p in self.folder.glob(f"*{suffix}")))

    def _check_shard(self, name: str) -> int | None:
        """Rows of shard ``name``, or None (after a warning and removing it) when it is damaged."""
        keys_path, vec_path = self.folder / f"{name}.keys.npy", self.folder / f"{name}.npy"
        try:
            k_shape, k_dtype, k_size = npy_shape(keys_path)
            v_shape, v_dtype, v_size = npy_shape(vec_path)
            sizes = (keys_path.stat().st_size, vec_path.stat().st_size)
            problem = None
            if sizes != (k_size, v_size):
                problem = f"expected {k_size} + {v_size} bytes from the headers, got {sizes[0]} + {sizes[1]}"
            elif k_shape != (v_shape[0], DIGEST_BYTES) or len(v_shape) != 2:
                problem = f"keys {k_shape} do not match vectors {v_shape}"
            elif (k_dtype, v_dtype) != (np.dtype(np.uint8), np.dtype(np.float32)):
                problem = f"unexpected dtypes {k_dtype} / {v_dtype}"
        except (OSError, ValueError, EOFError) as err:
            problem = f"unreadable ({err})"
        if problem is None:
            return int(v_shape[0])
        self._discard(name, problem)
        return None

    def _read_keys(self, name: str) -> np.ndarray | None:
        """The shard's keys ``(rows,) V32``, or None (discarded) when they fail their checksum."""
        try:
            data = (self.folder / f"{name}.keys.npy").read_bytes()
        except FileNotFoundError:  # removed by another process since it was listed
            return None
        recorded = self._recorded(name)
        if recorded is None and not self._unverified_warned:
            self._unverified_warned = True
            warnings.warn(
                f"{self.folder}: embedding-cache shards without checksums (written by an older "
                f"honed) are used unverified; fix: delete {self.folder} to rebuild them",
                stacklevel=5,
            )
        elif recorded is not None and hashlib.sha256(data).hexdigest() != recorded.get("keys"):
            self._discard(name, "its keys do not match their recorded sha256")
            return None
        raw = np.load(io.BytesIO(data))  # (rows, 32) uint8
        return np.ascontiguousarray(raw).view(f"V{DIGEST_BYTES}").reshape(-1)

    def _vectors_sound(self, name: str) -> bool:
        """Whether the shard's vectors match their recorded sha256 (checked once per process)."""
        recorded = self._recorded(name)
        if name in self._verified or recorded is None:
            return True
        try:
            sound = sha256_file(self.folder / f"{name}.npy") == recorded.get("vectors")
        except OSError:
            return False  # removed by another process since it was listed
        if not sound:
            self._discard(name, "its vectors do not match their recorded sha256")
            return False
        self._verified.add(name)
        return True

    def _load_index(self) -> _Index:
        names = self._shard_names()
        if self._index is not None and self._index.listed == names:
            return self._index
        good: list[str] = []
        keys: list[np.ndarray] = []
        shard: list[np.ndarray] = []
        row: list[np.ndarray] = []
        for name in names:
            rows = self._check_shard(name)
            shard_keys = self._read_keys(name) if rows is not None else None
            if rows is None or shard_keys is None or self.disabled:
                continue
            keys.append(shard_keys)
            shard.append(np.full(rows, len(good), dtype=np.int32))
            row.append(np.arange(rows, dtype=np.int64))
            good.append(name)
        if not keys:
            empty = np.zeros(0, dtype=f"V{DIGEST_BYTES}")
            self._index = _Index(names, (), empty, np.zeros(0, np.int32), np.zeros(0, np.int64))
            return self._index
        all_keys = np.concatenate(keys)
        # Stable: a text stored twice (two processes encoded it at once) resolves to the older shard.
        order = np.argsort(all_keys, kind="stable")
        self._index = _Index(
            names,
            tuple(good),
            all_keys[order],
            np.concatenate(shard)[order],
            np.concatenate(row)[order],
        )
        return self._index

    def lookup(self, digests: Sequence[bytes]) -> dict[int, np.ndarray]:
        """Stored vectors of the texts with these sha256 ``digests``: {position in digests: (dim,)}.

        Only the rows asked for are read (the shards are memory-mapped), after the shard's
        vectors matched their checksum. A row that is not a finite unit vector is treated as
        absent (it will be encoded and stored again). Nothing is found once the cache is
        :attr:`disabled`.
        """
        if self.disabled or not digests:
            return {}
        try:
            index = self._load_index()
        except OSError as err:  # e.g. a shard that cannot be read: the run goes on without it
            self._disable(f"{self.folder}: unreadable embedding cache ({err})")
            return {}
        if self.disabled or index.keys.size == 0:
            return {}
        wanted = np.frombuffer(b"".join(digests), dtype=f"V{DIGEST_BYTES}")  # (n,)
        pos = np.minimum(np.searchsorted(index.keys, wanted), index.keys.size - 1)
        hit = np.flatnonzero(index.keys[pos] == wanted)
        found: dict[int, np.ndarray] = {}
        for shard_no in np.unique(index.shard[pos[hit]]):
            mine = hit[index.shard[pos[hit]] == shard_no]  # positions served by this shard
            rows = index.row[pos[mine]]
            name = index.names[shard_no]
            if not self._vectors_sound(name) or self.disabled:
                continue
            try:
                vectors = np.asarray(
                    np.load(self.folder / f"{name}.npy", mmap_mode="r")[rows], dtype=np.float32
                )
            except (OSError, ValueError):  # removed by another process since it was listed
                continue
            norms = np.linalg.norm(vectors, axis=1)  # (rows,)
            for position, vector, ok in zip(mine, vectors, np.abs(norms - 1.0) < 1e-3):
                if ok:
                    found[int(position)] = vector
        return found

    def append(self, digests: Sequence[bytes], vectors: np.ndarray) -> Path | None:
        """Store ``vectors`` (n, dim) under ``digests`` as one new shard; returns its path (None if n == 0)."""
        if len(digests) != len(vectors):
            raise ValueError(
                f"append: expected one digest per vector, got {len(digests)} digests and "
                f"{len(vectors)} vectors"
            )
        if not digests or self.disabled:
            return None
        keys = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), DIGEST_BYTES)
        with folder_lock(self.folder, _WRITING, wait=LOCK_WAIT_S):
            self._write_meta(int(vectors.shape[1]))
            # Unique and sortable by age: no two writers (processes, machines on a shared disk)
            # collide.
            name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
            final = self.folder / f"{name}.npy"
            sha = {"vectors": save_atomic(final, np.ascontiguousarray(vectors, dtype=np.float32))}
            keys_tmp = save_tmp(self.folder / f"{name}.keys.npy", keys)
            sha["keys"] = sha256_file(keys_tmp)
            record = {"rows": len(digests), "dim": int(vectors.shape[1]), "sha256": sha}
            record_tmp = save_tmp(self.folder / f"{name}.json", json.dumps(record).encode())
            try:
                os.replace(record_tmp, self.folder / f"{name}.json")
                os.replace(keys_tmp, self.folder / f"{name}.keys.npy")  # last: shard visible
            finally:
                keys_tmp.unlink(missing_ok=True)
                record_tmp.unlink(missing_ok=True)
        self._verified.add(name)
        return final

    def _write_meta(self, dim: int) -> None:
        meta = self.folder / "meta.json"
        if meta.is_file():
            return
        tmp = self.folder / f".meta.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        body = {"format": FORMAT_VERSION, "dim": dim, **self.setting}
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, meta)

    def stored(self) -> int:
        """Rows on disk for this setting (a text stored twice counts twice)."""
        return int(self._load_index().keys.size)
