"""Splitting an encoding across the processes of a ``torchrun`` launch (two CPU processes, gloo)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from honed.encoding.disk_cache import DiskCache
from honed.encoding.distributed import deal_batches
from honed.encoding.encoder import EmbeddingCache, encode_texts, encoder_setting

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

WORKER = Path(__file__).with_name("_torchrun_encode.py")


def test_deal_batches_gives_every_process_the_same_mix() -> None:
    lengths = list(range(100, 0, -1))  # already longest first: position = rank in length
    shares = deal_batches(lengths, batch_size=10, processes=2)
    assert sorted(shares[0] + shares[1]) == list(range(100))
    assert [len(s) for s in shares] == [50, 50]
    # snake order: batches 0, 3, 4, 7, 8 to process 0 and 1, 2, 5, 6, 9 to process 1
    assert shares[0][:10] == list(range(10)) and shares[1][:10] == list(range(10, 20))
    work = [sum(lengths[i] for i in s) for s in shares]
    assert abs(work[0] - work[1]) <= 10 * 10  # at most one batch's length step per round


def test_deal_batches_keeps_each_batch_of_similar_length() -> None:
    lengths = [3, 90, 4, 88, 5, 91, 2, 89]
    shares = deal_batches(lengths, batch_size=2, processes=2)
    for share in shares:
        for start in range(0, len(share), 2):
            batch = [lengths[i] for i in share[start : start + 2]]
            assert max(batch) - min(batch) <= 3


def test_deal_batches_with_fewer_texts_than_processes() -> None:
    assert deal_batches([5], batch_size=4, processes=3) == [[0], [], []]
    assert deal_batches([], batch_size=4, processes=2) == [[], []]


def test_split_min_texts_is_validated() -> None:
    with pytest.raises(ValueError, match=r"split_min_texts: expected a positive integer or None"):
        EmbeddingCache(split_min_texts=0)


def test_a_single_process_never_splits(tiny_model: SentenceTransformer) -> None:
    cache = EmbeddingCache(precision="fp32", split_min_texts=1)
    cache.encode(tiny_model, ["a", "b", "c"])
    assert cache.stats.encoded == 3 and cache.stats.received == 0


@pytest.mark.slow
def test_torchrun_two_processes_share_one_encoding(
    tiny_model: SentenceTransformer, tiny_model_path: Path, tmp_path: Path
) -> None:
    import torch
    from _torchrun_encode import N_UNIQUE, texts

    from torchrun_helpers import free_port as _free_port
    from torchrun_helpers import torchrun as _torchrun

    if not torch.distributed.is_gloo_available():
        pytest.skip("torch was built without the gloo backend, which CPU collectives need")
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "TOKENIZERS_PARALLELISM": "false",
    }
    args = ["--nproc_per_node", "2", "--master_port", str(_free_port()), str(WORKER)]
    result = _torchrun([*args, str(tiny_model_path), str(cache_dir), str(out)], env, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]

    single = encode_texts(tiny_model, texts(), batch_size=4, precision="fp32")  # (44, dim)
    rows = [np.load(out / f"rank{r}.npy") for r in (0, 1)]
    np.testing.assert_allclose(rows[0], single, atol=1e-5)
    np.testing.assert_array_equal(rows[0], rows[1])  # both hold the very same gathered vectors
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        # 40 distinct texts in batches of 4: 10 batches, 5 for each process
        assert report["first"] == {"requested": 44, "encoded": 20, "hits_disk": 0, "received": 20}
        # the repeat was all memory hits; the lone text of each process was encoded locally
        assert report["after"]["encoded"] == 21 and report["after"]["received"] == 20
        assert "expected every process to encode the same texts" in report["mismatch"]
        assert report["from_disk"] == {
            "requested": 44,
            "encoded": 0,
            "hits_disk": N_UNIQUE,
            "received": 0,
        }
        # sentence-transformers 6 has the trainer's split evaluation (the worker checks results)
        assert report["trainer_evaluation"] == "done"
    # only process 0 wrote the disk cache, each text once
    fingerprint = EmbeddingCache().fingerprint(tiny_model)
    setting = encoder_setting(tiny_model, fingerprint, "fp32")
    assert DiskCache(cache_dir, setting).stored() == N_UNIQUE + 1  # + process 0's lone text
