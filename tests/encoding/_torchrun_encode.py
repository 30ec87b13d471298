"""Worker of ``tests/test_encode_split.py``, run as two CPU processes under ``torchrun`` (gloo).

Usage: torchrun --nproc_per_node 2 tests/_torchrun_encode.py MODEL CACHE_DIR OUT_DIR
Writes ``OUT_DIR/rank<N>.npy`` (the embeddings this process received) and ``rank<N>.json``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch.distributed as dist

from honed.encoding.encoder import EmbeddingCache, load_model

N_UNIQUE = 40


def texts() -> list[str]:
    """40 distinct texts of 1-13 extra words (so that length sorting matters) and 4 repeats."""
    unique = [f"text {i} about" + " word" * ((i * 7) % 13) for i in range(N_UNIQUE)]
    return unique + unique[:4]


def main(model_path: str, cache_dir: str, out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    out = Path(out_dir)
    model = load_model(model_path, "cpu")
    cache = EmbeddingCache(batch_size=4, precision="fp32", directory=cache_dir, split_min_texts=8)
    first = cache.encode(model, texts())  # split: each process encodes its share
    report: dict[str, object] = {"first": asdict(cache.stats)}
    cache.encode(model, texts())  # all in memory everywhere: agreed on, nothing encoded
    cache.encode(model, [f"only in process {rank}"])  # under split_min_texts: no collective
    report["after"] = asdict(cache.stats)
    try:
        cache.encode(model, [f"process {rank} text {i}" for i in range(10)])
        report["mismatch"] = None
    except ValueError as err:
        report["mismatch"] = str(err)
    dist.barrier()  # process 0 has written the disk cache
    again = EmbeddingCache(batch_size=4, precision="fp32", directory=cache_dir, split_min_texts=8)
    np.testing.assert_array_equal(again.encode(model, texts()), first)
    report["from_disk"] = asdict(again.stats)
    report["trainer_evaluation"] = trainer_evaluation(model, first)
    np.save(out / f"rank{rank}.npy", first)
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


def trainer_evaluation(model: object, expected: np.ndarray) -> str:
    """As in the sentence-transformers trainer: rank 0 runs the evaluator, the others serve it.

    Our cache must not start a collective of its own there (it would wait forever); the
    sentence-transformers model splits its encode calls across the processes by itself.
    """
    try:
        from sentence_transformers.util.distributed import distributed_evaluation
    except ImportError:
        return "skipped"
    fresh = EmbeddingCache(batch_size=4, precision="fp32", split_min_texts=8)
    with distributed_evaluation(model) as runs_evaluator:
        if runs_evaluator:
            np.testing.assert_allclose(fresh.encode(model, texts()), expected, atol=1e-5)
    return "done"


if __name__ == "__main__":
    main(*sys.argv[1:4])
