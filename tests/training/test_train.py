"""Tests for honed.training.trainer: dims, config, datasets, losses, dropout and one tiny training run."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from sentence_transformers.sentence_transformer import losses

from conftest import TINY_DIM
from honed.data.beir import load_beir
from honed.encoding.dims import matryoshka_dims
from honed.encoding.encoder import EmbeddingCache
from honed.mining.rows import MinedRow
from honed.training.config import LossName, TrainConfig
from honed.training.dataset import build_dataset
from honed.training.evaluator import DevEvaluator, dev_metrics
from honed.training.losses import build_loss, set_attention_dropout
from honed.training.trainer import TrainResult, TrainRun, merge_rounds, train_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def _row(query: str, positive: str, negatives: tuple[str, ...]) -> MinedRow:
    return MinedRow(
        query_id=f"id {query}",
        query=query,
        positive_id=f"id {positive}",
        positive=positive,
        positive_score=0.5,
        negative_ids=tuple(f"id {n}" for n in negatives),
        negatives=negatives,
        negative_scores=tuple(0.1 for _ in negatives),
    )


ROWS = (
    _row("q1", "p1", ("a", "b", "c")),
    _row("q2", "p2", ("x",)),
    _row("q3", "p3", ("y", "z")),
)


@pytest.fixture(scope="module")
def model_copy(tiny_model: SentenceTransformer) -> SentenceTransformer:
    """A private copy of the tiny model for tests that attach losses to it (weights untouched)."""
    return copy.deepcopy(tiny_model)


# --- matryoshka_dims ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "smallest", "expected"),
    [
        (384, 64, (384, 256, 128, 64)),
        (768, 64, (768, 512, 256, 128, 64)),
        (1024, 64, (1024, 512, 256, 128, 64)),
        (100, 64, (100, 64)),
        (64, 64, (64,)),
        (32, 64, (32,)),
        (384, 128, (384, 256, 128)),
    ],
)
def test_matryoshka_dims(full: int, smallest: int, expected: tuple[int, ...]) -> None:
    assert matryoshka_dims(full, smallest) == expected


# --- TrainConfig ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"epochs: expected a positive integer, got 0"),
        ({"batch_size": 0}, r"batch_size: expected a positive integer, got 0"),
        ({"mini_batch_size": -1}, r"mini_batch_size: expected a positive integer, got -1"),
        ({"logging_steps": 0}, r"logging_steps: expected a positive integer, got 0"),
        ({"learning_rate": 0.0}, r"learning_rate: expected a value in \(0, 1\), got 0\.0"),
        ({"learning_rate": 1.0}, r"learning_rate: expected a value in \(0, 1\), got 1\.0"),
        ({"warmup_ratio": 1.0}, r"warmup_ratio: expected a value in \[0, 1\), got 1\.0"),
        ({"warmup_ratio": -0.1}, r"warmup_ratio: expected a value in \[0, 1\), got -0\.1"),
        ({"dims": ()}, r"dims: expected positive integers, got \(\)"),
        ({"dims": (64, 0)}, r"dims: expected positive integers, got \(64, 0\)"),
        ({"dims": (64, 128)}, r"dims: expected distinct integers, largest first \(e\.g\. --dims "
         r"384,256,128,64\), got \(64, 128\); fix: "),
        ({"dims": (64, 64)}, r"dims: expected distinct integers, largest first .*got \(64, 64\)"),
        ({"max_seq_length": 0}, r"max_seq_length: expected a positive integer \(tokens per text\) "
         r"or None for the model's own, got 0; fix: pass --max-seq-length"),
        ({"max_seq_length": -5}, r"max_seq_length: expected a positive integer .*got -5"),
        ({"max_seq_length": True}, r"max_seq_length: expected a positive integer .*got True"),
        ({"attention_dropout": 1.0}, r"attention_dropout: expected a value in \[0, 1\) or None"),
        ({"loss": "contrastive"}, r"'contrastive' is not a valid LossName"),
        ({"precision": "fp16"}, r"'fp16' is not a valid Precision"),
    ],
)
def test_train_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_train_config_coerces_and_serialises() -> None:
    config = TrainConfig(loss="mnrl", precision="fp32", dims=[256, 128, 64])  # type: ignore[arg-type]
    assert config.loss is LossName.MNRL
    assert config.dims == (256, 128, 64)  # a tuple; out-of-order dims are refused (above)
    as_dict = config.to_dict()
    assert as_dict["loss"] == "mnrl"
    assert as_dict["precision"] == "fp32"
    assert json.loads(json.dumps(as_dict))["dims"] == [256, 128, 64]
    assert TrainConfig(attention_dropout=None).attention_dropout is None


# --- build_dataset ------------------------------------------------------------------------------


def test_mnrl_dataset_pads_short_rows_cyclically() -> None:
    dataset = build_dataset(ROWS, LossName.MNRL)
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    assert dataset["anchor"] == ["q1", "q2", "q3"]
    assert dataset["positive"] == ["p1", "p2", "p3"]
    assert [dataset[i]["negative_1"] for i in range(3)] == ["a", "x", "y"]
    assert [dataset[2][f"negative_{j}"] for j in (1, 2, 3)] == ["y", "z", "y"]
    assert [dataset[1][f"negative_{j}"] for j in (1, 2, 3)] == ["x", "x", "x"]


def test_cached_dataset_uses_the_mnrl_layout() -> None:
    assert build_dataset(ROWS, LossName.CACHED_MNRL).column_names[:3] == [
        "anchor",
        "positive",
        "negative_1",
    ]


@pytest.mark.parametrize("loss", [LossName.TRIPLET, LossName.GIST])
def test_triplet_and_gist_datasets_have_one_row_per_negative(loss: LossName) -> None:
    dataset = build_dataset(ROWS, loss)
    assert dataset.column_names == ["anchor", "positive", "negative"]
    assert dataset.num_rows == 6
    triples = list(zip(dataset["anchor"], dataset["positive"], dataset["negative"], strict=True))
    assert triples == [
        ("q1", "p1", "a"),
        ("q1", "p1", "b"),
        ("q1", "p1", "c"),
        ("q2", "p2", "x"),
        ("q3", "p3", "y"),
        ("q3", "p3", "z"),
    ]


def test_build_dataset_needs_rows() -> None:
    with pytest.raises(ValueError, match=r"rows: expected at least one mined row, got none"):
        build_dataset([], LossName.MNRL)


# --- build_loss ---------------------------------------------------------------------------------

INNER = {
    LossName.MNRL: losses.MultipleNegativesRankingLoss,
    LossName.CACHED_MNRL: losses.CachedMultipleNegativesRankingLoss,
    LossName.GIST: losses.GISTEmbedLoss,
    LossName.TRIPLET: losses.TripletLoss,
}


@pytest.mark.parametrize("name", list(LossName))
def test_build_loss_wraps_the_inner_loss_in_matryoshka(
    model_copy: SentenceTransformer, tiny_model: SentenceTransformer, name: LossName
) -> None:
    config = TrainConfig(loss=name, dims=(32, 16), precision="fp32")
    loss = build_loss(model_copy, config, guide=tiny_model)
    assert isinstance(loss, losses.MatryoshkaLoss)
    assert type(loss.loss) is INNER[name]
    assert tuple(loss.matryoshka_dims) == (32, 16)


@pytest.mark.parametrize("name", list(LossName))
def test_build_loss_without_matryoshka_is_the_bare_loss(
    model_copy: SentenceTransformer, tiny_model: SentenceTransformer, name: LossName
) -> None:
    config = TrainConfig(loss=name, matryoshka=False, precision="fp32")
    assert type(build_loss(model_copy, config, guide=tiny_model)) is INNER[name]


def test_build_loss_passes_the_settings_through(
    model_copy: SentenceTransformer, tiny_model: SentenceTransformer
) -> None:
    def bare(**kwargs: object) -> object:
        config = TrainConfig(matryoshka=False, **kwargs)  # type: ignore[arg-type]
        return build_loss(model_copy, config, guide=tiny_model)

    assert bare(loss="mnrl", scale=7.0).scale == 7.0
    assert bare(loss="cached_mnrl", mini_batch_size=4).mini_batch_size == 4
    assert bare(loss="triplet", triplet_margin=0.5).triplet_margin == 0.5
    gist = bare(loss="gist", gist_temperature=0.05)
    assert gist.temperature == 0.05
    assert gist.guide is tiny_model


def test_build_loss_defaults_to_the_model_width(model_copy: SentenceTransformer) -> None:
    loss = build_loss(model_copy, TrainConfig(loss="mnrl"))
    assert tuple(loss.matryoshka_dims) == matryoshka_dims(TINY_DIM) == (32,)


def test_gist_without_a_guide_is_refused(model_copy: SentenceTransformer) -> None:
    with pytest.raises(ValueError, match=r"loss 'gist' needs a guide model; fix: pass the base"):
        build_loss(model_copy, TrainConfig(loss="gist"))


# --- set_attention_dropout ------------------------------------------------------------------------


def _self_attention_dropouts(model: SentenceTransformer) -> list[float]:
    return [m.dropout.p for m in model.modules() if type(m).__name__.endswith("SelfAttention")]


def test_set_attention_dropout(tiny_model: SentenceTransformer) -> None:
    original = _self_attention_dropouts(tiny_model)
    clone = copy.deepcopy(tiny_model)
    changed = set_attention_dropout(clone, 0.25)
    assert changed == 2 > 0  # one self-attention block per layer of the tiny BERT
    assert _self_attention_dropouts(clone) == [0.25, 0.25]
    assert clone[0].auto_model.config.attention_probs_dropout_prob == 0.25
    assert _self_attention_dropouts(tiny_model) == original  # the shared fixture is untouched
    hidden = [m.p for n, m in clone.named_modules() if n.endswith("output.dropout")]
    assert hidden and all(p == 0.1 for p in hidden)  # hidden-layer dropout stays on


# --- one tiny end-to-end training run ----------------------------------------------------------


def _mined_rows(mini_beir: Path, n: int = 16) -> tuple[MinedRow, ...]:
    """``n`` train pairs of the mini BEIR set, each with two negatives from other topics."""
    data = load_beir(mini_beir)
    doc_ids = sorted(data.corpus)
    rows = []
    for qid, docs in sorted(data.positives("train").items()):
        for pid in sorted(docs):
            at = doc_ids.index(pid)
            negs = [doc_ids[(at + 8) % len(doc_ids)], doc_ids[(at + 16) % len(doc_ids)]]
            rows.append(
                MinedRow(
                    query_id=qid,
                    query=data.queries[qid],
                    positive_id=pid,
                    positive=data.corpus[pid].full_text,
                    positive_score=0.0,
                    negative_ids=tuple(negs),
                    negatives=tuple(data.corpus[d].full_text for d in negs),
                    negative_scores=(0.0, 0.0),
                )
            )
    return tuple(rows[:n])


@pytest.mark.slow
def test_train_model_end_to_end(
    tiny_model: SentenceTransformer, mini_beir: Path, tmp_path: Path
) -> None:
    data = load_beir(mini_beir)
    doc_ids = sorted(data.corpus)
    doc_texts = [data.corpus[d].full_text for d in doc_ids]
    cache = EmbeddingCache(batch_size=16, precision="fp32")
    dims = (32, 16)
    evaluator = DevEvaluator(data.queries, data.split("test"), doc_ids, doc_texts, dims, cache)
    model = copy.deepcopy(tiny_model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = _mined_rows(mini_beir)
    assert len(rows) == 16
    config = TrainConfig(
        loss="cached_mnrl",
        epochs=2,
        batch_size=8,
        mini_batch_size=4,
        learning_rate=1e-3,
        dims=dims,
        precision="fp32",
        logging_steps=1,
    )
    output_dir = tmp_path / "checkpoints"

    result = train_model(
        model, rows, config, output_dir, evaluator=evaluator, run=TrainRun(show_progress_bar=False)
    )

    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight changed"
    assert [c["epoch"] for c in result.curve] == [1.0, 2.0]
    for point in result.curve:
        assert 0.0 <= point["dev_ndcg@10"] <= 1.0
        assert 0.0 <= point["dev_ndcg@10@16d"] <= 1.0
    best = max(result.curve, key=lambda c: c["dev_ndcg@10"])
    assert result.best_epoch == best["epoch"]
    assert result.best_dev_ndcg10 == best["dev_ndcg@10"]
    assert len(evaluator.history) == 2
    assert not output_dir.exists(), "checkpoints were not removed"
    assert result.rows == 16
    assert result.steps >= 4  # at least two batches of 8 per epoch
    assert result.seconds > 0 and result.rows_per_second > 0
    assert result.precision == "fp32"
    assert result.dims == dims
    assert result.config["loss"] == "cached_mnrl"
    assert result.loss_curve and all(math.isfinite(p["loss"]) for p in result.loss_curve)
    assert not model.training
    assert _self_attention_dropouts(model) == [0.0, 0.0]  # the default attention_dropout

    # The kept weights are the best epoch's: its dev score comes back, and its corpus encoding
    # is already in the shared cache.
    encoded = cache.stats.encoded
    again = dev_metrics(model, data.queries, data.split("test"), doc_ids, doc_texts, dims, cache)
    assert again["dev_ndcg@10"] == pytest.approx(result.best_dev_ndcg10)
    assert cache.stats.encoded == encoded


def _result(
    curve: tuple[tuple[float, float], ...], best: tuple[float, float], rows: int
) -> TrainResult:
    return TrainResult(
        curve=tuple({"epoch": e, "dev_ndcg@10": v} for e, v in curve),
        loss_curve=tuple({"epoch": e, "step": 1.0, "loss": 1.0} for e, _ in curve),
        best_epoch=best[0],
        best_dev_ndcg10=best[1],
        rows=rows,
        steps=10,
        seconds=5.0,
        rows_per_second=2.0,
        precision="fp32",
        dims=(32, 16),
        config={"epochs": len(curve), "learning_rate": 5e-5},
    )


@pytest.mark.parametrize("kept", [True, False])
def test_merge_rounds_continues_the_epochs_and_keeps_the_right_best(kept: bool) -> None:
    first = _result(((1.0, 0.5), (2.0, 0.6)), (2.0, 0.6), rows=100)
    second = _result(((1.0, 0.7 if kept else 0.55),), (1.0, 0.7 if kept else 0.55), rows=90)
    merged = merge_rounds(first, second, kept)
    assert [c["epoch"] for c in merged.curve] == [1.0, 2.0, 3.0]
    assert [c["epoch"] for c in merged.loss_curve] == [1.0, 2.0, 3.0]
    assert merged.best_epoch == (3.0 if kept else 2.0)
    assert merged.best_dev_ndcg10 == (0.7 if kept else 0.6)
    assert merged.steps == 20 and merged.seconds == 10.0 and merged.rows == 100
    assert merged.round2 == {
        "rows": 90,
        "epochs": 1,
        "learning_rate": 5e-5,
        "best_dev_ndcg10": 0.7 if kept else 0.55,
        "first_round_dev_ndcg10": 0.6,
        "kept": kept,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"remine_epochs": -1}, r"remine_epochs: expected an integer >= 0 \(0: no second round\)"),
        ({"remine_epochs": True}, r"remine_epochs: expected an integer >= 0"),
        ({"remine_learning_rate": 0.0}, r"remine_learning_rate: expected a value in \(0, 1\)"),
    ],
)
def test_remine_settings_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_fewer_rows_than_one_distributed_step_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under torchrun only full batches are used: 13 rows cannot fill 2 processes x 16 rows."""
    from honed.training import trainer

    monkeypatch.setattr(trainer, "world_size", lambda: 2)
    config = TrainConfig(batch_size=16)
    with pytest.raises(ValueError, match=r"13 rows are fewer than one step of 2 processes x 16 "
                       r"rows; fix: --batch-size 6 or less"):  # fmt: skip
        trainer._training_args(config, tmp_path, 13, False, "cpu", False)
    monkeypatch.setattr(trainer, "world_size", lambda: 1)
    trainer._training_args(config, tmp_path, 13, False, "cpu", False)  # one process: a short batch
