"""What ``honed train`` needs to run as several processes under ``torchrun`` / ``accelerate launch``.

The training loop is already distributed by the Hugging Face trainer (DDP; gloo on CPU, NCCL on
GPU). honed only has to (1) gather in-batch negatives across processes, (2) keep every process on
its own GPU, (3) let one process write files, (4) offer a way to check that the processes
really saw different rows, and (5) split a large encoding across the processes of a launch
(:func:`deal_batches`, :func:`union_of_missing`, :func:`gather_rows`, used by
:class:`honed.encoding.encoder.EmbeddingCache`). ``honed run``, ``honed mine`` and ``honed evaluate``
start a process group of their own (:func:`process_group`), encode split, and let the first
process write, search and decide (:func:`on_main_process`, :func:`agree`). The launcher's environment variables (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``) are read as well as ``torch.distributed``, because the loss is built before the
trainer initialises the process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "BatchLog",
    "agree",
    "barrier",
    "deal_batches",
    "encode_shared",
    "gather_rows",
    "group_ready",
    "is_main_process",
    "log_encode",
    "on_main_process",
    "process_device",
    "process_group",
    "rank",
    "reported_by_main",
    "union_of_missing",
    "world_size",
]

LOG_BATCHES_ENV = "HONED_LOG_BATCHES"
LOG_ENCODE_ENV = "HONED_LOG_ENCODE"
# The other processes wait in a collective while the first one searches (mining, metrics): hours
# on a large corpus on CPU. A failed process ends the whole launch anyway (torchrun stops the
# others), so this only bounds a true deadlock and must outlast the longest search.
WAIT_FOR_MAIN = timedelta(hours=24)

T = TypeVar("T")


def _initialised() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


def world_size() -> int:
    """Processes in this training run: the process group's size, else ``$WORLD_SIZE``, else 1."""
    if _initialised():
        import torch.distributed as dist

        return int(dist.get_world_size())
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the process that writes files (global rank 0), and always when not distributed."""
    if _initialised():
        import torch.distributed as dist

        return int(dist.get_rank()) == 0
    return int(os.environ.get("RANK", "0")) == 0


def group_ready() -> bool:
    """True when a process group of more than one process is initialised (collectives will work)."""
    return _initialised() and world_size() > 1


def rank() -> int:
    """This process's global rank: the process group's, else ``$RANK``, else 0."""
    if _initialised():
        import torch.distributed as dist

        return int(dist.get_rank())
    return int(os.environ.get("RANK", "0"))


def barrier() -> None:
    """Wait for every process; a no-op when not distributed."""
    if _initialised():
        import torch.distributed as dist

        dist.barrier()


def process_device(device: str) -> str:
    """``device`` pinned to this process's GPU (``cuda:$LOCAL_RANK``) when distributed over GPUs.

    Without it every process would load its model (and GIST's guide) onto ``cuda:0`` first.

    >>> process_device("cpu")
    'cpu'
    """
    if device == "cuda" and world_size() > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


@contextlib.contextmanager
def process_group(device: str = "cpu", timeout: timedelta = WAIT_FOR_MAIN) -> Iterator[None]:
    """A process group over the processes of a ``torchrun`` launch, for the length of the block.

    Started only when the launcher asked for several processes (``$WORLD_SIZE`` > 1) and no
    group exists yet: NCCL when ``device`` is a GPU (this process pinned to ``cuda:$LOCAL_RANK``),
    else gloo. Destroyed at the end of the block. A no-op in a single process, and when the
    caller has initialised a group of its own (that one is used and left alone).

    Example:
        >>> with process_group("cpu"):      # in one process: nothing happens
        ...     pass

    Raises:
        ValueError: launched as several processes with a torch that has no torch.distributed.
    """
    if _initialised() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError(
            f"torchrun launch: expected a torch build with torch.distributed, got {torch.__version__} "
            "without it; fix: run the command as a single process (without torchrun)"
        )
    if device.startswith("cuda"):
        index = torch.device(device).index
        local = int(os.environ.get("LOCAL_RANK", "0"))
        gpu = torch.device("cuda", local if index is None else index)
        torch.cuda.set_device(gpu)
        dist.init_process_group("nccl", timeout=timeout, device_id=gpu)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    try:
        yield
    finally:
        dist.destroy_process_group()


def on_main_process(work: Callable[[], T]) -> T:
    """``work()`` done by the first process alone; every process returns its result.

    In a process group of several processes the others wait (a broadcast) and receive the
    result, or the error ``work`` raised, which they raise too; so every process of the launch
    ends the same way. Not distributed: simply ``work()``. ``work`` is where files get written.
    """
    if not group_ready():
        return work()
    import torch
    import torch.distributed as dist

    box: list[Any] = [None]
    failure: Exception | None = None
    if rank() == 0:
        try:
            box[0] = (True, work())
        except Exception as err:  # handed to the other processes, then raised here as well
            failure = err
            sent = err if _picklable(err) else RuntimeError(f"{type(err).__name__}: {err}")
            box[0] = (False, sent)
    with torch.inference_mode(False):
        dist.broadcast_object_list(box, src=0)
    done, value = box[0]
    if failure is not None:
        raise failure
    if not done:
        # The first process prints this error; the others exit with it quietly (one message).
        with contextlib.suppress(AttributeError, TypeError):
            value.honed_reported_by_main = True
        raise value
    return value


def agree(value: T) -> T:
    """The first process's ``value``, in every process: how a launch takes one decision.

    Each process may compute a decision (best epoch, second round kept, ...) from what it holds;
    float noise between devices must not let two processes go different ways, so the first
    process decides and the others follow. Not distributed: ``value`` itself.

    >>> agree("kept")
    'kept'
    """
    return on_main_process(lambda: value)


def reported_by_main(err: BaseException) -> bool:
    """True for an error the first process raised and handed on (:func:`on_main_process`).

    The first process prints it; a command line in another process exits without repeating it.
    """
    return bool(getattr(err, "honed_reported_by_main", False))


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # any pickling failure: the exception is sent as text instead
        return False
    return True


def log_encode(label: str, counts: Mapping[str, int]) -> None:
    """Append one encoding's counts to ``$HONED_LOG_ENCODE.rank<N>.jsonl``; off when unset.

    A debugging aid like ``HONED_LOG_BATCHES``: one line ``{"label": ..., "requested": ...,
    "encoded": ..., "received": ...}`` per call, so one can check that the processes of a launch
    each encoded their share.
    """
    prefix = os.environ.get(LOG_ENCODE_ENV)
    if not prefix:
        return
    path = Path(f"{prefix}.rank{rank()}.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"label": label, "world_size": world_size(), **counts}) + "\n")


# --- splitting an encoding across the processes of a launch -----------------------------------


def deal_batches(lengths: Sequence[int], batch_size: int, processes: int) -> list[list[int]]:
    """Positions (into ``lengths``) that each process encodes: length-sorted batches, dealt in turn.

    Texts are sorted longest first and cut into batches of ``batch_size``, so each batch pads to
    nearly its own length; the batches are dealt out snake-wise (0, 1, ..., P-1, P-1, ..., 0, ...).
    Equal contiguous slices of the sorted order would give the last process all the longest texts,
    several times the work under attention's quadratic cost; dealing gives every process the same
    mix of lengths and the same count give or take one batch.

    >>> deal_batches([5, 1, 9, 3], batch_size=1, processes=2)
    [[2, 1], [0, 3]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    shares: list[list[int]] = [[] for _ in range(processes)]
    for number, batch in enumerate(batches):
        turn, step = divmod(number, processes)
        shares[step if turn % 2 == 0 else processes - 1 - step].extend(batch)
    return shares


def union_of_missing(request: bytes, missing: Sequence[int]) -> list[int]:
    """Every process's ``missing`` positions, merged and sorted; a collective call.

    ``request`` identifies the texts asked for (a hash of them): the processes must all be
    encoding the same list, or the positions would not mean the same texts.

    Raises:
        ValueError: on every process, when the processes asked for different texts.
    """
    import torch
    import torch.distributed as dist

    payload: list[Any] = [None] * world_size()
    with torch.inference_mode(False):
        dist.all_gather_object(payload, (request, list(missing)))
    if len({req for req, _ in payload}) > 1:
        raise ValueError(
            "EmbeddingCache.encode under torchrun: expected every process to encode the same texts, "
            "got different lists; fix: call it with the same texts in every process, or build the "
            "cache with split_min_texts=None to encode in each process on its own"
        )
    return sorted({int(i) for _, positions in payload for i in positions})


def gather_rows(local: np.ndarray, shares: Sequence[Sequence[int]], dim: int) -> np.ndarray:
    """All processes' rows, each placed at its position: float32 (sum of shares, dim); collective.

    ``local`` holds this process's rows in the order of its share. Shares differ in size by up
    to a batch, so every process pads to the largest before the (fixed-shape) all-gather.
    """
    import torch
    import torch.distributed as dist

    most = max(len(s) for s in shares)
    backend = str(dist.get_backend())
    device = torch.device("cuda", torch.cuda.current_device()) if "nccl" in backend else "cpu"
    with torch.inference_mode(False):
        padded = torch.zeros(most, dim, dtype=torch.float32, device=device)  # (most, dim)
        padded[: len(local)] = torch.from_numpy(np.ascontiguousarray(local, dtype=np.float32))
        parts = [torch.empty_like(padded) for _ in shares]
        dist.all_gather(parts, padded)
    out = np.empty((sum(len(s) for s in shares), dim), dtype=np.float32)
    for part, positions in zip(parts, shares):
        out[list(positions)] = part[: len(positions)].cpu().numpy()
    return out


def encode_shared(
    encode: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    request: bytes,
    missing: Sequence[int],
    batch_size: int,
    dim: int,
) -> tuple[list[int], np.ndarray, int]:
    """Encode the texts at the positions missing in any process, each process its share; collective.

    Returns (the merged positions, their vectors float32 (len(positions), dim) in that order,
    how many of them this process encoded). ``request`` identifies ``texts`` (see
    :func:`union_of_missing`); ``encode`` maps a list of texts to their (n, dim) vectors.
    """
    union = union_of_missing(request, missing)
    if not union:
        return [], np.zeros((0, dim), dtype=np.float32), 0
    shares = deal_batches([len(texts[i]) for i in union], batch_size, world_size())
    mine = [union[j] for j in shares[rank()]]
    local = encode([texts[i] for i in mine]) if mine else np.zeros((0, dim), dtype=np.float32)
    return union, gather_rows(local, shares, dim), len(mine)


class BatchLog:
    """Data-collator wrapper that appends each batch's anchor texts to a JSON-lines file.

    A debugging aid, switched on with ``HONED_LOG_BATCHES=PREFIX``: each process writes
    ``PREFIX.rank<N>.jsonl``, one line ``{"anchors": [...]}`` per batch it was given, so that
    one can check that the processes of a distributed run saw disjoint rows (the collator is
    called after the sampler was sharded, i.e. with this process's rows only).
    """

    def __init__(self, collator: Any, path: str | Path) -> None:
        self.collator, self.path = collator, Path(path)

    @classmethod
    def from_env(cls, collator: Any, rank: int) -> Any:
        """``collator`` wrapped when ``$HONED_LOG_BATCHES`` is set, else ``collator`` itself."""
        prefix = os.environ.get(LOG_BATCHES_ENV)
        return cls(collator, f"{prefix}.rank{rank}.jsonl") if prefix else collator

    def __call__(self, features: Sequence[dict[str, Any]]) -> Any:
        line = json.dumps({"anchors": [f.get("anchor") for f in features]}, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        return self.collator(features)

    def __getattr__(self, name: str) -> Any:
        # The trainer reads attributes of its collator (valid_label_columns, ...).
        if name == "collator":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.collator, name)
