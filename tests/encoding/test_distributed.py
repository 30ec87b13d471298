"""``honed train`` under ``torchrun``: two CPU processes (gloo), in-batch negatives gathered.

One end-to-end run checks what can go wrong with DDP: the ranks must see disjoint rows that
together cover the training set (``HONED_LOG_BATCHES``), the model must actually train, and only
rank 0 may write the model folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from honed.encoding.distributed import BatchLog, process_device
from torchrun_helpers import free_port, torchrun

N_ROWS = 32  # 2 processes x batch 4 -> 4 full steps each, nothing dropped


def _write_pairs(path: Path) -> list[str]:
    rows = [
        {
            "query": f"question {i} about topic{i} and subject{i}",
            "positive": f"answer {i} explains topic{i} in detail",
            "negative": f"unrelated note {i} on subject{i + 100}",
        }
        for i in range(N_ROWS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return [r["query"] for r in rows]


@pytest.mark.slow
def test_torchrun_two_processes_train_disjoint_rows(tiny_model_path: Path, tmp_path: Path) -> None:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    if not torch.distributed.is_gloo_available():
        pytest.skip("torch was built without the gloo backend, which CPU DDP needs")
    queries = _write_pairs(tmp_path / "pairs.jsonl")
    out, log_prefix = tmp_path / "model", tmp_path / "batches"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "TOKENIZERS_PARALLELISM": "false",
        "HONED_LOG_BATCHES": str(log_prefix),
    }
    result = torchrun(
        [
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "honed.cli.main",
            "train",
            str(tmp_path / "pairs.jsonl"),
            "--out",
            str(out),
            "--base",
            str(tiny_model_path),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--mini-batch-size",
            "4",
            "--precision",
            "fp32",
        ],
        env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:]

    # The ranks trained on disjoint rows that together are the whole training set.
    logs = sorted(p.name for p in tmp_path.glob("batches.rank*.jsonl"))
    assert logs == ["batches.rank0.jsonl", "batches.rank1.jsonl"]
    seen = [
        [
            a
            for line in (tmp_path / name).read_text().splitlines()
            for a in json.loads(line)["anchors"]
        ]
        for name in logs
    ]
    assert len(seen[0]) == len(seen[1]) == N_ROWS // 2
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(queries)

    # One model folder, written once (no leftover tmp or checkpoint folders), and it trained.
    models = sorted(p.parent.name for p in tmp_path.rglob("modules.json"))
    assert models == ["model"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["model"]
    trained = SentenceTransformer(str(out), device="cpu")
    base = SentenceTransformer(str(tiny_model_path), device="cpu")
    emb = trained.encode(queries[:4])
    assert np.isfinite(emb).all()
    base_state = base.state_dict()
    assert any(not torch.equal(t, base_state[k]) for k, t in trained.state_dict().items())


def test_batch_log_writes_anchors_and_forwards_to_the_collator(tmp_path: Path) -> None:
    class Collator:
        valid_label_columns = ["label"]

        def __call__(self, features: list[dict[str, str]]) -> int:
            return len(features)

    log = BatchLog(Collator(), tmp_path / "b.rank0.jsonl")
    assert log([{"anchor": "a"}, {"anchor": "b"}]) == 2
    assert log.valid_label_columns == ["label"]
    assert json.loads((tmp_path / "b.rank0.jsonl").read_text()) == {"anchors": ["a", "b"]}


def test_batch_log_is_off_without_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HONED_LOG_BATCHES", raising=False)
    collator = object()
    assert BatchLog.from_env(collator, rank=0) is collator


def test_process_device_pins_each_process_to_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_device("cuda") == "cuda:1"
    assert process_device("cpu") == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert process_device("cuda") == "cuda"
