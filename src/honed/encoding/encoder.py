"""Encoding texts with a model: one encoding per (model, text), shared by every stage.

The pipeline encodes the corpus once with the base model and hands the same array to the
baseline evaluation (every Matryoshka dim is a truncation of it) and to the hard-negative miner.
:class:`EmbeddingCache` makes that sharing explicit and countable: it keys every embedding by the
model's fingerprint and the text's hash, and ``stats`` says how many texts were really encoded.

Given a ``directory``, the cache also keeps the embeddings on disk (:mod:`honed.encoding.disk_cache`),
written as they are computed (:mod:`honed.encoding.batches`): a second run with the same base
model and corpus encodes nothing, an interrupted one only what it had not reached. Under
``torchrun`` a large ``encode`` call is split across the processes of the launch
(:func:`honed.encoding.distributed.deal_batches`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from honed.encoding import batches, distributed
from honed.encoding.batches import Progress, encode_with_bar
from honed.encoding.bundled import default_model_path, resolve_model_name
from honed.encoding.disk_cache import DiskCache, encoder_setting, setting_key, text_digest
from honed.encoding.precision import Precision, autocast, resolve_device, resolve_precision

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "EmbeddingCache",
    "EncodeStats",
    "Precision",
    "autocast",
    "default_model_path",
    "load_model",
    "model_fingerprint",
    "resolve_device",
    "resolve_precision",
    "resolve_model_name",
    "token_lengths",
]


def load_model(
    name_or_path: str, device: str | None = None, trust_remote_code: bool = False
) -> SentenceTransformer:
    """Load a sentence-transformers model from a folder or hub id, never running remote code unless asked.

    Raises:
        ValueError: the path exists but is not a model folder (names the path and what is missing).
    """
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

    path = Path(name_or_path)
    if (
        path.exists()
        and not (path / "config.json").exists()
        and not (path / "modules.json").exists()
    ):
        raise ValueError(
            f"{path}: not a model folder (expected config.json or modules.json inside); "
            "fix: pass a sentence-transformers model folder, e.g. RUN_DIR/model"
        )
    try:
        model = SentenceTransformer(
            str(name_or_path), device=resolve_device(device), trust_remote_code=trust_remote_code
        )
    except OSError as err:
        raise ValueError(
            f"cannot load model {name_or_path!r}: {str(err).splitlines()[0]}; fix: pass an existing "
            "model folder (this machine may have no access to a model hub)"
        ) from err
    # transformers 5 loads weights in their stored dtype: a checkpoint saved in fp16/bf16 would be
    # trained with half-precision master weights, where lr-sized updates round away and training
    # diverges (seen on a GPU with an fp16 copy of MiniLM). Keep fp32 weights; autocast does bf16.
    return model.float()


def model_fingerprint(model: SentenceTransformer) -> str:
    """A short hash of the model's weights and text-processing settings.

    Two models with the same fingerprint map the same text to the same vector, so cached
    embeddings are keyed by it. Hashing all-MiniLM-L6-v2's 90 MB of weights takes ~0.1 s.
    """
    import torch

    digest = hashlib.sha256()
    digest.update(json.dumps({"max_seq_length": model.max_seq_length}).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class EncodeStats:
    """How much work the cache saved.

    ``requested`` texts asked for; ``encoded`` really encoded by this process; ``hits_disk``
    read from the on-disk cache; ``received`` encoded by the other processes of a ``torchrun``
    launch and received from them. The rest came from memory (including repeated texts).
    """

    requested: int
    encoded: int
    hits_disk: int = 0
    received: int = 0


class EmbeddingCache:
    """Embeddings keyed by (model fingerprint, text): each text is encoded once per model.

    Args:
        batch_size: texts per forward pass.
        precision: matmul precision (``auto`` = bf16 where the hardware runs it natively).
        directory: also keep embeddings on disk here, reused across runs (None: memory only);
            see :mod:`honed.encoding.disk_cache` for the layout and :func:`honed.encoding.disk_cache.default_cache_dir`.
        split_min_texts: under ``torchrun`` (an initialised process group of several processes),
            ``encode`` calls with at least this many texts are split across the processes, and
            every process must then make the same call; None never splits.
        commit_seconds: the texts encoded so far are written to the on-disk cache at least this
            often (and when the encoding is interrupted): an interrupted run keeps them, and the
            next run encodes only the rest (None: :data:`honed.encoding.batches.COMMIT_SECONDS`).
        memory: keep vectors in memory for later calls (False: a streaming caller, one call's).

    Example:
        >>> cache = EmbeddingCache(directory="~/.cache/honed/embeddings")
        >>> docs = cache.encode(model, ["a", "b"])      # encodes 2 texts (or reads them from disk)
        >>> again = cache.encode(model, ["b", "c"])     # encodes only "c"
    """

    def __init__(
        self,
        batch_size: int = 64,
        precision: Precision | str = Precision.AUTO,
        directory: str | Path | None = None,
        split_min_texts: int | None = 1024,
        commit_seconds: float | None = None,
        memory: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
        if split_min_texts is not None and split_min_texts < 1:
            raise ValueError(
                f"split_min_texts: expected a positive integer or None, got {split_min_texts}"
            )
        self.batch_size = batch_size
        self.precision = Precision(precision)
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.split_min_texts = split_min_texts
        self.commit_seconds, self.memory = commit_seconds, memory
        self._store: dict[str, dict[bytes, np.ndarray]] = {}
        self._fingerprints: dict[int, str] = {}
        self._disks: dict[str, DiskCache] = {}
        self._counts = {"requested": 0, "encoded": 0, "hits_disk": 0, "received": 0}

    @property
    def stats(self) -> EncodeStats:
        return EncodeStats(**self._counts)

    def fingerprint(self, model: SentenceTransformer) -> str:
        """The model's fingerprint, computed once per model object (its weights must not change)."""
        key = id(model)
        if key not in self._fingerprints:
            self._fingerprints[key] = model_fingerprint(model)
        return self._fingerprints[key]

    def forget(self, model: SentenceTransformer) -> None:
        """Drop the remembered fingerprint of ``model`` (call after its weights changed)."""
        self._fingerprints.pop(id(model), None)

    def known(self, model: SentenceTransformer, texts: Sequence[str]) -> int:
        """How many of ``texts`` need no encoding: in memory, or on disk (then read into memory).

        What an estimate made before :meth:`encode` needs; the vectors it reads from disk are
        kept, so the later :meth:`encode` does not read them again.
        """
        store = self._store.setdefault(self.fingerprint(model), {})
        keys = list(dict.fromkeys(text_digest(t) for t in texts))
        missing = [k for k in keys if k not in store]
        if missing and self.directory is not None:
            found = self._disk(model, self.fingerprint(model)).lookup(missing)
            store.update({missing[i]: vector for i, vector in found.items()})
            self._counts["hits_disk"] += len(found)
        known = {k for k in keys if k in store}
        return sum(text_digest(t) in known for t in texts)

    def in_memory(self, model: SentenceTransformer, texts: Sequence[str]) -> bool:
        """Are all of ``texts`` held in this process's memory for ``model`` (no disk lookup)?"""
        store = self._store.get(self.fingerprint(model), {})
        return all(text_digest(t) in store for t in texts)

    def persist(self, model: SentenceTransformer, texts: Sequence[str]) -> int:
        """Store on disk the vectors of ``texts`` held in memory for ``model`` and not there yet.

        For a model that outlives the run (``honed run`` saves its tuned model): a later
        ``honed index`` or ``evaluate`` of that folder finds them. Returns how many were stored.
        """
        if self.directory is None or not distributed.is_main_process():
            return 0
        fingerprint = self.fingerprint(model)
        store = self._store.get(fingerprint, {})
        keys = [k for k in dict.fromkeys(text_digest(t) for t in texts) if k in store]
        on_disk = self._disk(model, fingerprint)
        found = on_disk.lookup(keys)
        new = [k for i, k in enumerate(keys) if i not in found]
        if new:
            self._write(on_disk, new, np.stack([store[k] for k in new]))
        return len(new)

    def encode(
        self,
        model: SentenceTransformer,
        texts: Sequence[str],
        show_progress_bar: bool = False,
        fingerprint: str | None = None,
        disk: bool = True,
        progress: Progress | None = None,
        split: bool = True,
    ) -> np.ndarray:
        """Return L2-normalised float32 embeddings, shape (len(texts), dim), encoding only unseen texts.

        ``disk=False`` keeps this call off the on-disk cache: for a model whose weights exist only
        in this run (a model being trained), whose embeddings no later run can reuse. The texts
        are encoded one batch at a time: ``show_progress_bar`` shows a bar over them that moves
        with every batch, ``progress`` is called with each batch's size (and once with the
        texts found in the cache), and finished batches reach the disk as they are done.
        ``split=False``: this process alone, even under ``torchrun`` (the others are not calling).
        """
        fingerprint = fingerprint or self.fingerprint(model)
        store = self._store.setdefault(fingerprint, {})
        keys = [text_digest(t) for t in texts]
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key not in store and key not in missing:
                missing[key] = text
        self._counts["requested"] += len(texts)
        on_disk = self._disk(model, fingerprint) if disk and self.directory is not None else None
        if missing and on_disk is not None:
            found = on_disk.lookup(list(missing))  # {position in missing: vector}
            hits = {k: found[i] for i, k in enumerate(missing) if i in found}
            store.update(hits)
            missing = {k: t for k, t in missing.items() if k not in hits}
            self._counts["hits_disk"] += len(hits)
        if progress is not None and len(missing) < len(keys):
            progress(len(keys) - len(missing))  # found in memory or on disk
        if split and self._splits(model, texts):
            fresh = self._encode_split(model, keys, texts, missing, show_progress_bar)
            store.update(fresh)
            if missing and on_disk is not None and distributed.is_main_process():
                self._write(on_disk, list(missing), np.stack([fresh[k] for k in missing]))
        elif missing:
            self._encode_missing(model, missing, store, on_disk, (show_progress_bar, progress))
        if not keys:
            dim = embedding_dim(model)
            return np.zeros((0, dim), dtype=np.float32)
        vectors = np.stack([store[key] for key in keys])  # (n_texts, dim)
        if not self.memory:
            store.clear()
        return vectors

    def _encode_missing(
        self,
        model: SentenceTransformer,
        missing: dict[bytes, str],
        store: dict[bytes, np.ndarray],
        on_disk: DiskCache | None,
        shown: tuple[bool, Progress | None],
    ) -> None:
        """Encode ``missing`` batch by batch into ``store``, committing to ``on_disk`` as it goes."""
        keys, write = list(missing), on_disk is not None and distributed.is_main_process()

        def commit(positions: list[int], vectors: np.ndarray) -> None:
            done = [keys[i] for i in positions]
            store.update(zip(done, vectors))  # kept in memory too, even if the call is cut short
            self._counts["encoded"] += len(done)
            if write and on_disk is not None:
                self._write(on_disk, done, vectors)

        encode_with_bar(
            lambda batch: encode_texts(model, batch, self.batch_size, self.precision),
            list(missing.values()), self.batch_size, commit,
            batches.COMMIT_SECONDS if self.commit_seconds is None else self.commit_seconds, shown,
            token_lengths(model, list(missing.values())),
        )

    def _disk(self, model: SentenceTransformer, fingerprint: str) -> DiskCache:
        precision = resolve_precision(self.precision, str(model.device))
        setting = encoder_setting(model, fingerprint, precision.value)
        key = setting_key(setting)
        if key not in self._disks:
            assert self.directory is not None  # checked by the caller
            self._disks[key] = DiskCache(self.directory, setting)
        return self._disks[key]

    @staticmethod
    def _write(on_disk: DiskCache, keys: list[bytes], vectors: np.ndarray) -> None:
        try:
            on_disk.append(keys, vectors)
        except OSError as err:  # a full or read-only disk costs the reuse, not the run
            warnings.warn(
                f"{on_disk.folder}: could not store embeddings ({err}); this run goes on without "
                "storing them; fix: free space, or pass --cache-dir DIR elsewhere, or --no-cache",
                stacklevel=3,
            )

    def _splits(self, model: SentenceTransformer, texts: Sequence[str]) -> bool:
        """Split this call across processes? Decided from what every process has in common."""
        return (
            self.split_min_texts is not None
            and len(texts) >= self.split_min_texts
            and distributed.group_ready()
            # Inside the sentence-transformers trainer's evaluation only rank 0 runs the evaluator
            # while the other ranks serve its model.encode calls (already split): a collective of
            # our own there would wait forever.
            and getattr(model, "_distributed_inference", None) is None
        )

    def _encode_split(
        self,
        model: SentenceTransformer,
        keys: Sequence[bytes],
        texts: Sequence[str],
        missing: dict[bytes, str],
        show_progress_bar: bool,
    ) -> dict[bytes, np.ndarray]:
        """Encode the texts missing in any process, each process its share; all get every vector."""
        first: dict[bytes, int] = {}
        for position, key in enumerate(keys):
            first.setdefault(key, position)
        bar = show_progress_bar and distributed.is_main_process()
        union, vectors, mine = distributed.encode_shared(
            lambda part: encode_texts(model, part, self.batch_size, self.precision, bar),
            texts,
            hashlib.sha256(b"".join(keys)).digest(),  # the processes must agree on the texts
            sorted(first[k] for k in missing),
            self.batch_size,
            embedding_dim(model),
        )  # vectors: (len(union), dim)
        self._counts["encoded"] += mine
        self._counts["received"] += len(union) - mine
        return {keys[i]: vector for i, vector in zip(union, vectors)}


TOKENIZE_CHUNK = 4096  # texts per tokenizer call when counting: bounded memory for any corpus


def token_lengths(model: SentenceTransformer, texts: Sequence[str]) -> list[int] | None:
    """Each text's token count as the model will see it (special tokens, truncation), or None.

    None where the model has no fast (Rust) tokenizer to count with: callers then sort by
    characters, as sentence-transformers does. Counting costs ~30 us per short text and ~0.4 ms
    per 256-token abstract on a 2-core CPU, a few percent of encoding it.
    """
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "is_fast", False) or len(texts) < 2:
        return None
    limit = int(model.max_seq_length or 512)
    counts: list[int] = []
    for begin in range(0, len(texts), TOKENIZE_CHUNK):
        ids = tokenizer(
            list(texts[begin : begin + TOKENIZE_CHUNK]), add_special_tokens=True, truncation=True,
            max_length=limit, return_attention_mask=False, return_token_type_ids=False,
        )["input_ids"]  # fmt: skip
        counts.extend(len(row) for row in ids)
    return counts


def encode_texts(
    model: SentenceTransformer,
    texts: Sequence[str],
    batch_size: int = 64,
    precision: Precision | str = Precision.AUTO,
    show_progress_bar: bool = False,
) -> np.ndarray:
    """Encode ``texts`` with ``model`` (no cache): float32, L2-normalised, shape (n, dim).

    More than one batch of texts is cut into batches by token count (:func:`token_lengths`,
    :func:`honed.encoding.batches.encode_in_batches`): sentence-transformers sorts by
    characters, which pads code and command lines far beyond their tokens. bf16 autocast where
    the hardware supports it.
    """
    import torch

    if len(texts) > batch_size:
        lengths = token_lengths(model, texts)
        if lengths is not None:
            return batches.encode_in_batches(
                lambda batch: encode_texts(model, batch, batch_size, precision),
                texts, batch_size, lengths=lengths,
            )  # fmt: skip
    device = str(model.device)
    model.eval()
    with torch.inference_mode(), autocast(device, precision):
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
    return np.asarray(vectors, dtype=np.float32)  # (n_texts, dim)


#: Published sha256 of all-MiniLM-L6-v2's model.safetensors (Hugging Face, sentence-transformers org).
def embedding_dim(model: SentenceTransformer) -> int:
    """Output width of ``model`` (the method was renamed in sentence-transformers 6)."""
    getter = (
        getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    )
    dim = getter()
    if not dim:
        raise ValueError("model: cannot tell its embedding dimension; fix: pass --dims explicitly")
    return int(dim)
