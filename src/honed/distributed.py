"""What ``honed train`` needs to run as several processes under ``torchrun`` / ``accelerate launch``.

The training loop is already distributed by the Hugging Face trainer (DDP; gloo on CPU, NCCL on
GPU). honed only has to (1) gather in-batch negatives across processes, (2) keep every process on
its own GPU, (3) let one process write files, and (4) offer a way to check that the processes
really saw different rows. The launcher's environment variables (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``) are read as well as ``torch.distributed``, because the loss is built before the
trainer initialises the process group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["BatchLog", "barrier", "is_main_process", "process_device", "world_size"]

LOG_BATCHES_ENV = "HONED_LOG_BATCHES"


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
